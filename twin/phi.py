"""phi, the deviation of the physical network's interference from the twin's model, measured while playing.

The twin models a slot's adjacent-channel and hardware-impairment power (ACI + HWI); the physical network (the
analytic one with its hidden phi, or the radios over the air) produces ``(1 + phi)`` times it. This module holds the
one online estimator of phi both physical networks use, and the hook through which they report it:

* :class:`PhiEstimator`: least-squares phi from (measured, modelled) power pairs, per episode and running over
  episodes;
* :class:`PhiReporter`: the optional ``measured_phi()`` hook of a physical network (the continual trainer reads it);
* :class:`AnalyticPhiProbe`: gives the analytic physical network that hook (``testbed.ota.OtaNetwork`` has its own,
  from what it measured over the air).

``calibration.fit.fit_ratio`` estimates the same scale from a calibration session's controlled measurements, with a
confidence interval and each radio pair counting alike; it is an offline fit of a different design and stays there.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

import torch

from .config import DTNConfig, decode_action
from .network import LinkAdaptationNetwork, StepResult, evaluate_slot

__all__ = ["AnalyticPhiProbe", "PhiEstimator", "PhiReporter"]


class PhiEstimator:
    """Least-squares phi: ``1 + phi = sum(measured x modelled) / sum(modelled^2)``, minus one.

    Least squares through the origin rather than the ratio of means ``sum(measured) / sum(modelled)``: both are
    unbiased for ``measured = (1 + phi) modelled + noise``, but least squares weights every pair by its modelled
    power, so the strong interferers, measured well above the noise floor, decide the estimate and the many weak
    pairs (mostly measurement noise) barely move it; it is also what both physical networks have always reported,
    so runs and figures keep their numbers.

    Evidence is gathered per episode; :meth:`end_episode` folds the episode into a running estimate in which each
    earlier episode's weight is multiplied by ``memory`` once per episode (``memory = 0``: the current episode only).

    Args:
        memory: weight of the previous episodes' evidence, in [0, 1].
    """

    def __init__(self, memory: float = 0.0) -> None:
        self.memory = memory
        self.numerator = 0.0       # sum of measured x modelled over earlier episodes (weighted)
        self.denominator = 0.0     # sum of modelled^2 over earlier episodes (weighted)
        self._episode_numerator = 0.0
        self._episode_denominator = 0.0

    def add(self, measured: Any, modelled: Any) -> None:
        """Add evidence: powers measured and modelled (floats, or tensors of equal shape; one unit)."""
        product, square = measured * modelled, modelled * modelled
        if isinstance(product, torch.Tensor):
            product, square = product.sum(), square.sum()
        self._episode_numerator += float(product)
        self._episode_denominator += float(square)

    def start_episode(self) -> None:
        """Discard the current episode's evidence (a new episode starts; it was not folded in)."""
        self._episode_numerator = 0.0
        self._episode_denominator = 0.0

    def end_episode(self) -> None:
        """Fold the current episode's evidence into the running estimate."""
        self.numerator = self.numerator * self.memory + self._episode_numerator
        self.denominator = self.denominator * self.memory + self._episode_denominator
        self._episode_numerator = self._episode_denominator = 0.0

    def phi(self) -> float | None:
        """The estimate from the earlier episodes (weighted by ``memory``) and the current one; ``None`` before any
        evidence with a positive modelled power."""
        numerator = self.numerator * self.memory + self._episode_numerator
        denominator = self.denominator * self.memory + self._episode_denominator
        if denominator <= 0:
            return None
        return numerator / denominator - 1.0

    def state(self) -> tuple[float, float]:
        """The running sums (numerator, denominator) of the folded episodes."""
        return (self.numerator, self.denominator)

    def load_state(self, state: tuple[float, float]) -> None:
        """Restore what :meth:`state` returned."""
        self.numerator, self.denominator = state


@runtime_checkable
class PhiReporter(Protocol):
    """Optional hook of a physical network: the deviation phi it measured during its last episode.

    The over-the-air network implements it from its ACI / HWI measurements; :class:`AnalyticPhiProbe`
    implements it for the analytic physical network. ``None`` means "no estimate available".
    """

    def measured_phi(self) -> float | None: ...


class AnalyticPhiProbe:
    """A physical network that also reports the phi it measured (wraps e.g. :class:`twin.AnalyticPhysical`).

    Every slot it compares the ACI + HWI power the physical network produced (``info['aci_w'] +
    info['hwi_w']``) with what the twin's model predicts for the same decisions from the twin's view of the
    channel (gains with the log-normal ``sigma_rt`` error, phi = 0); :class:`PhiEstimator` over the episode's
    scheduled links gives the measured phi.

    Args:
        network: the physical network (a :class:`LinkAdaptationNetwork`, typically :class:`AnalyticPhysical`).
        sigma_rt: relative error of the twin's channel knowledge (default: the network's config).
        seed: seed of that error's draws.
    """

    def __init__(self, network: LinkAdaptationNetwork, sigma_rt: float | None = None, seed: int = 0) -> None:
        self.network = network
        self.sigma_rt = network.config.sigma_rt if sigma_rt is None else float(sigma_rt)
        self.estimator = PhiEstimator(memory=0.0)
        self._model_config = network.config.with_updates(phi_aci=0.0, phi_hwi=0.0)
        self._generator = torch.Generator(device=network.device).manual_seed(int(seed))

    # PhysicalNetwork contract, forwarded.
    @property
    def config(self) -> DTNConfig:
        return self.network.config

    @property
    def batch_size(self) -> int:
        return self.network.batch_size

    @property
    def num_links(self) -> int:
        return self.network.num_links

    @property
    def scheduled(self) -> torch.Tensor:
        return self.network.scheduled

    @property
    def context_network(self) -> LinkAdaptationNetwork:
        """The wrapped network, whose deployment a mirrored twin copies."""
        return self.network

    def reset(self, seed: int | None = None) -> torch.Tensor:
        self.estimator.start_episode()
        if seed is not None:
            self._generator.manual_seed(int(seed) ^ 0x5A5A5A5A)
        return self.network.reset(seed)

    def step(self, action: torch.Tensor) -> StepResult:
        state = self.network.network_state()
        error = self.sigma_rt * torch.randn(state.gain.shape, generator=self._generator, device=state.gain.device,
                                            dtype=state.gain.dtype)
        believed = state._replace(gain=state.gain * torch.exp(error), config=self._model_config)
        result = self.network.step(action)
        power_index, modulation_index, code_rate_index = decode_action(action.to(state.gain.device),
                                                                       self.network.config.num_power_levels)
        model = evaluate_slot(believed, self.network.power_set_w[power_index], modulation_index, code_rate_index)
        active = result.info["scheduled"]
        self.estimator.add((result.info["aci_w"] + result.info["hwi_w"])[active],
                           (model.terms.aci_w + model.terms.hwi_w)[active])
        return result

    def measured_phi(self) -> float | None:
        """Least-squares phi of the slots played since the last reset (``None`` before any)."""
        return self.estimator.phi()

    def state_dict(self) -> dict[str, Any]:
        """The error generator's state (episodes reset everything else)."""
        return {"generator": self._generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._generator.set_state(state["generator"])
