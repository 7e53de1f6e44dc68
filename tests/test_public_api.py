"""Every name the package promises at top level resolves to a real object."""
import torchcert


def test_every_public_name_resolves():
    for name in torchcert.__all__:
        assert getattr(torchcert, name) is not None, name


def test_unknown_name_raises_attribute_error():
    import pytest

    with pytest.raises(AttributeError):
        torchcert.no_such_thing  # noqa: B018
