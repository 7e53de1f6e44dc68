"""Every name the package promises at top level resolves to a real object."""
import torchcert


def test_every_public_name_resolves():
    for name in torchcert.__all__:
        assert getattr(torchcert, name) is not None, name


def test_unknown_name_raises_attribute_error():
    import pytest

    with pytest.raises(AttributeError):
        torchcert.no_such_thing  # noqa: B018


def test_train_and_verify_are_the_functions_even_after_their_subpackages_load():
    """``torchcert.train``/``verify`` are also subpackages; importing those must not shadow the functions."""
    import inspect

    import torchcert.train.run  # noqa: F401  (binds the subpackage on the parent module)
    import torchcert.verify.run  # noqa: F401
    from torchcert import train, verify

    assert inspect.isfunction(train) and inspect.isfunction(verify)
    assert "config" in inspect.signature(train).parameters
    assert "checkpoint" in inspect.signature(verify).parameters
    assert torchcert.train is train and torchcert.verify is verify
