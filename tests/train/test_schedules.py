"""ε and learning-rate schedules: golden SmoothedScheduler values, shape of the ramp, MultiStepLR equivalence."""
import pytest
import torch

from torchcert.train.schedules import multistep_lr, smoothed_eps


def test_golden_smoothed_scheduler(golden_dir):
    ref = torch.load(golden_dir / "schedules.pt", weights_only=True)
    for run in ref["runs"]:
        got = [smoothed_eps(n, ref["max_eps"], ref["epoch_length"], run["schedule_start"], run["schedule_length"],
                            run["mid"], run["beta"]) for n in range(len(run["eps"]))]
        assert got == pytest.approx(run["eps"], rel=1e-5, abs=1e-12)


def test_ramp_shape():
    values = [smoothed_eps(s, 0.3, 10, start=2, length=4) for s in range(80)]
    assert values[:11] == [0.0] * 11                      # epoch 1 natural, ramp starts after step init=10
    assert all(b >= a for a, b in zip(values, values[1:]))  # monotone
    assert values[50] == pytest.approx(0.3) and values[-1] == 0.3
    assert 0 < values[11] < values[20] < 0.3


def test_degenerate_ramp_is_linear_and_bad_options_rejected():
    assert smoothed_eps(1, 1.0, 1, start=1, length=2) == pytest.approx(0.5)  # mid step == init step
    with pytest.raises(ValueError, match="start >= 1"):
        smoothed_eps(0, 0.1, 10, start=0, length=5)


def test_multistep_lr_matches_torch():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[3, 5], gamma=0.2)
    for epoch in range(1, 9):
        assert multistep_lr(5e-4, epoch, (3, 5), 0.2) == opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
