"""Training: Trainer.fit(model, data) -> History.

Early stopping on the validation loss restores the best weights; a linear
KL warm-up and free bits guard against posterior collapse. The validation
loss always uses the full beta and the raw KL (no warm-up, no free bits), so
it is a fixed yardstick across epochs. Deterministic for a seed on the CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time

import numpy as np
import torch

from ._checks import as_int
from ._progress import progress_bar
from .data import WindowData
from .model import ScenarioVAE

__all__ = ["History", "Trainer"]

ACTIVE_KL = 0.1  # nats: a dimension above this carries information (free bits default 0.05)
PRIORS = ("aggregate", "normal")  # the latent prior generation draws from, set after training
COLUMNS = ("train_loss", "val_loss", "train_recon", "val_recon", "train_kl", "val_kl")


@dataclasses.dataclass
class History:
    """Per-epoch losses (nats per window, standardized units) and how the run ended."""

    records: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool
    seconds: float
    kl_per_dim: np.ndarray  # validation KL per latent dimension at the best epoch (nats)
    active_dims: int  # dimensions with validation KL > ACTIVE_KL nats (not collapsed)

    def to_frame(self):
        """DataFrame indexed by epoch with columns train_loss, val_loss,
        train_recon, val_recon, train_kl, val_kl (and beta, the KL weight used)."""
        import pandas as pd

        return pd.DataFrame(self.records).set_index("epoch")

    def plot(self, ax=None):
        """Training curve (matplotlib): train and validation loss per epoch,
        the best epoch marked. Returns the Axes."""
        import matplotlib

        if ax is None:
            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(6, 3.5))
        df = self.to_frame()
        ax.plot(df.index, df["train_loss"], label="train")
        ax.plot(df.index, df["val_loss"], label="validation")
        ax.axvline(self.best_epoch, color="grey", ls=":", label=f"best epoch {self.best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (nats / window)")
        ax.legend()
        return ax


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA device")
    return dev


class Trainer:
    """Fits a ScenarioVAE to WindowData.

    max_epochs: upper bound on passes over the training windows.
    batch_size, lr, weight_decay: AdamW settings.
    patience: epochs without a validation improvement before stopping.
    kl_warmup_epochs: the KL weight rises linearly from 0 to beta over these.
    free_bits: KL per latent dimension below this many nats is not penalized
        (batch mean), which keeps dimensions from collapsing.
    grad_clip: maximum gradient norm.
    seed: makes a CPU run reproducible (weights init is the model's own).
    device: "cpu", "cuda" or "auto".
    progress: a tqdm bar over epochs.
    prior: what generation draws z from, set on the model after training:
        "aggregate" (default), the mixture of the training windows'
        posteriors (ScenarioVAE.set_prior: tails and crisis regimes as often
        as in the training data); "normal", N(0, I).
    """

    def __init__(
        self,
        max_epochs: int = 200,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int = 20,
        kl_warmup_epochs: int = 10,
        free_bits: float = 0.05,
        grad_clip: float = 5.0,
        seed: int = 0,
        device: str = "cpu",
        progress: bool = True,
        prior: str = "aggregate",
    ) -> None:
        self.max_epochs = as_int("max_epochs", max_epochs, 1)
        self.batch_size = as_int("batch_size", batch_size, 1)
        self.patience = as_int("patience", patience, 1)
        self.kl_warmup_epochs = as_int("kl_warmup_epochs", kl_warmup_epochs, 0)
        self.seed = as_int("seed", seed, 0)
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
        self.prior = prior
        for name, value in (
            ("lr", lr),
            ("weight_decay", weight_decay),
            ("free_bits", free_bits),
            ("grad_clip", grad_clip),
        ):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if lr == 0:
            raise ValueError("lr must be > 0")
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.free_bits, self.grad_clip = float(free_bits), float(grad_clip)
        self.progress = bool(progress)
        self.device = _resolve_device(device)

    def fit(self, model: ScenarioVAE, data: WindowData) -> History:
        """Trains ``model`` on ``data``'s training windows, early-stopping on its
        validation windows; the model ends with the best weights, the data's
        scaler and regime thresholds, and a fitted :meth:`ScenarioVAE.regime_of`.
        A model that was trained or loaded before continues from its weights
        (fine-tuning); its scaler becomes the new data's."""
        if not isinstance(model, ScenarioVAE):
            raise ValueError(f"model must be a ScenarioVAE, got {type(model).__name__}")
        if not isinstance(data, WindowData):
            raise ValueError(f"data must be a WindowData, got {type(data).__name__}")
        if (model.window, model.n_assets) != (data.window, data.n_assets):
            raise ValueError(
                f"model expects windows of {model.window} days x {model.n_assets} assets, "
                f"data has {data.window} x {data.n_assets}"
            )
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        model.to(self.device)
        model.set_data_stats(data.scaler, data.thresholds)
        train = torch.as_tensor(data.scaled("train"), device=self.device)
        val = torch.as_tensor(data.scaled("val"), device=self.device)
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

        records: list[dict[str, float]] = []
        best, best_epoch, best_state, since_best = math.inf, 0, None, 0
        t0 = time.perf_counter()
        bar = progress_bar(self.max_epochs, self.progress, unit="epoch", desc="training")
        try:
            for epoch in range(1, self.max_epochs + 1):
                warm = (
                    1.0 if self.kl_warmup_epochs == 0 else min(1.0, epoch / self.kl_warmup_epochs)
                )
                beta = model.beta * warm
                model.train()
                sums = np.zeros(3)
                perm = torch.randperm(len(train), generator=gen).to(self.device)
                for i in range(0, len(train), self.batch_size):
                    xb = train[perm[i : i + self.batch_size]]
                    out = model.loss(xb, beta=beta, free_bits=self.free_bits)
                    opt.zero_grad(set_to_none=True)
                    out["loss"].backward()
                    if self.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
                    opt.step()
                    w = len(xb)
                    sums += w * np.array(
                        [out["loss"].item(), out["recon"].item(), out["kl"].item()]
                    )
                tr = sums / len(train)
                vl, vr, vk, kl_dim = self._evaluate(model, val)
                records.append(
                    {
                        "epoch": epoch,
                        "train_loss": float(tr[0]),
                        "val_loss": vl,
                        "train_recon": float(tr[1]),
                        "val_recon": vr,
                        "train_kl": float(tr[2]),
                        "val_kl": vk,
                        "beta": beta,
                    }
                )
                if not math.isfinite(tr[0]) or not math.isfinite(vl):
                    raise FloatingPointError(
                        f"training diverged at epoch {epoch} (loss {tr[0]}, val {vl}); "
                        "lower lr or raise grad clipping"
                    )
                # Only epochs at full KL weight can be the best (earlier ones
                # would win by an unfinished warm-up).
                if warm >= 1.0 and vl < best - 1e-6:
                    best, best_epoch, since_best = vl, epoch, 0
                    best_state = copy.deepcopy(model.state_dict())
                    best_kl_dim = kl_dim
                elif warm >= 1.0:
                    since_best += 1
                bar.set_postfix(train=f"{tr[0]:.2f}", val=f"{vl:.2f}", best=best_epoch)
                bar.update(1)
                if since_best >= self.patience:
                    break
        finally:
            bar.close()
        if best_state is None:  # the run ended inside the warm-up
            best_state, best_epoch, best_kl_dim = copy.deepcopy(model.state_dict()), epoch, kl_dim
        model.load_state_dict(best_state)
        model.eval()
        model.fit_regimes(data.train, data.labels[data.split == "train"])
        model.set_prior(data.train if self.prior == "aggregate" else None)
        model.trained_periods = sorted(set(model.trained_periods) | set(data.periods("train")))
        kl_dim_np = best_kl_dim.cpu().numpy()
        return History(
            records=records,
            best_epoch=best_epoch,
            stopped_early=since_best >= self.patience,
            seconds=time.perf_counter() - t0,
            kl_per_dim=kl_dim_np,
            active_dims=int(np.sum(kl_dim_np > ACTIVE_KL)),
        )

    def validation_loss(self, model: ScenarioVAE, data: WindowData) -> float:
        """The loss per window (nats) of ``model`` on ``data``'s validation
        windows, measured as :meth:`fit` measures it after every epoch."""
        val = torch.as_tensor(data.scaled("val"), device=self.device)
        return self._evaluate(model.to(self.device).eval(), val)[0]

    @torch.no_grad()
    def _evaluate(self, model: ScenarioVAE, val: torch.Tensor):
        model.eval()
        g = torch.get_rng_state()
        torch.manual_seed(self.seed + 1)  # same posterior draws every epoch
        recon_sum, kl_sum, kl_dim = 0.0, 0.0, torch.zeros(model.latent_dim, device=val.device)
        for i in range(0, len(val), 4096):
            xb = val[i : i + 4096]
            out = model.forward(xb)
            recon_sum += model.recon_nll(xb, *out.params).sum().item()
            kd = model.kl_per_dim(out.mu, out.logvar)
            kl_sum += kd.sum().item()
            kl_dim += kd.sum(0)
        torch.set_rng_state(g)
        n = len(val)
        recon, kl = recon_sum / n, kl_sum / n
        return recon + model.beta * kl, recon, kl, kl_dim / n
