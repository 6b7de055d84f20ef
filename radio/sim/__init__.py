"""Simulated radios sharing a simulated air: waveform-level front ends (DAC/ADC, IQ imbalance, LO leakage, phase
noise, additive distortion, Rapp PA, LNA IIP3, thermal noise) and per-link path loss, delay, fading and LO offset.

Usage::

    from radio.sim import SimConfig, SimulatedAir
    air = SimulatedAir(SimConfig.from_table(toml_dict.get("sim", {}), "testbed.toml"))
    sim0, sim1 = air.radio("sim0", guard), air.radio("sim1", guard)
"""

from radio.sim.air import SimulatedAir
from radio.sim.params import AirParams, LinkParams, RadioParams, SimConfig, example_table, field_docs
from radio.sim.radio import SimRadio

__all__ = ["AirParams", "LinkParams", "RadioParams", "SimConfig", "SimRadio", "SimulatedAir", "example_table",
           "field_docs"]
