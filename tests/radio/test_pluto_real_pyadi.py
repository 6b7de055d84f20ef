"""radio/pluto.py through the real pyadi-iio ``adi.Pluto`` and pylibiio on an ``xml:`` Pluto context.

Only libiio's attribute and buffer calls are emulated (tests/fakes/iio_emulation.py, with the AD9361 driver's
rules); pyadi-iio's own rules (manual gain only in manual mode, one cyclic buffer, int16 casting, the FIR it loads
below 2.083 MS/s) run as the installed library implements them.
"""

from __future__ import annotations

import errno
import gc
from pathlib import Path

import numpy as np
import pytest

from radio import RadioConfigError, RadioDisconnected, RadioFault, RadioTimeout, TxGuard, TxGuardRefused
from radio.pluto import RX_FULL_SCALE, TX_FULL_SCALE, PlutoRadio
from tests.fakes.iio_emulation import PLUTO_CONTEXT_XML, DriverError, IioEmulator, clock_chain, iio_available

_FOUND = iio_available()
pytestmark = pytest.mark.skipif(isinstance(_FOUND, str), reason=str(_FOUND))
GUARD = TxGuard.from_config({"allowed_bands": [[2400e6, 2483.5e6]], "max_tx_gain_db": -10.0})


def tone(n: int = 1920, amp: float = 0.5, cycles_per_sample: float = 0.01) -> np.ndarray:
    return (amp * np.exp(2j * np.pi * cycles_per_sample * np.arange(n))).astype(np.complex64)


@pytest.fixture
def emulator():
    iio, _ = _FOUND  # type: ignore[misc]
    emu = IioEmulator(iio)
    emu.add_pluto(cable_loss_db=50.0, noise_rms_codes=1.0)
    emu.install()
    yield emu
    gc.collect()  # buffers of closed radios are destroyed while the emulation still answers for them
    emu.uninstall()


def open_pluto(emulator: IioEmulator, xml: Path = PLUTO_CONTEXT_XML, **kw) -> PlutoRadio:
    _, adi = _FOUND  # type: ignore[misc]
    return PlutoRadio("pluto0", f"xml:{xml}", GUARD, adi_module=adi, **kw)


@pytest.fixture
def pluto(emulator):
    r = open_pluto(emulator)
    r.configure(lo_hz=2.44e9, rate_sps=1.92e6, bandwidth_hz=1.5e6, tx_gain_db=-10, rx_gain_db=50)
    yield r
    r.close()


def test_the_real_library_is_under_test(pluto, emulator):
    assert type(pluto._sdr).__module__ == "adi.ad936x" and type(pluto._sdr).__name__ == "Pluto"
    ident = pluto.identity()
    assert ident["serial"] == "104473dc59930009ffff1f00c6a7f94ae0" and ident["model"] == "ad9363a"
    assert pluto.temperature_c() == pytest.approx(38.5)


def test_configure_sets_manual_gain_and_the_driver_state(pluto, emulator):
    st = emulator.state_for(pluto._sdr)
    phy = lambda ch, out, a: st.attrs[("ad9361-phy", ch, out, a)]  # noqa: E731
    assert phy("voltage0", False, "gain_control_mode") == "manual"
    assert phy("voltage0", False, "hardwaregain") == "50.000000 dB"
    assert phy("voltage0", True, "hardwaregain") == "-10.000000 dB"
    assert phy("altvoltage1", True, "frequency") == phy("altvoltage0", True, "frequency") == "2440000000"
    assert phy("voltage0", False, "rf_bandwidth") == phy("voltage0", True, "rf_bandwidth") == "1500000"
    # pyadi-iio (and the driver) drop a gain write in AGC mode: only configure's manual mode makes it stick.
    pluto._sdr.gain_control_mode_chan0 = "slow_attack"
    pluto._sdr.rx_hardwaregain_chan0 = 10.0
    assert pluto._sdr.rx_hardwaregain_chan0 != 10
    pluto.configure(rx_gain_db=12)
    assert phy("voltage0", False, "gain_control_mode") == "manual" and pluto._sdr.rx_hardwaregain_chan0 == 12


@pytest.mark.parametrize("rate, fir_dec", [(521e3, 4), (1.92e6, 4), (2.5e6, 4), (7.68e6, 4), (20e6, 4),
                                           (30.72e6, 2), (61.44e6, 2)])
def test_sample_rate_goes_through_the_fir_pyadi_loads(emulator, rate, fir_dec):
    r = open_pluto(emulator)
    r.configure(rate_sps=rate, bandwidth_hz=1.5e6, lo_hz=2.44e9)
    st = emulator.state_for(r._sdr)
    assert st.fir_enabled and st.fir.rx_dec == fir_dec
    assert abs(st.sample_rate - rate) <= 1e-5 * rate  # the BBPLL's fractional divider: 521000 reads 520999
    r.close()


def test_the_emulated_driver_refuses_low_rates_without_the_fir():
    with pytest.raises(DriverError) as e:
        clock_chain(2_000_000, fir_intdec=1)
    assert e.value.errno == errno.EINVAL
    assert clock_chain(2_000_000, fir_intdec=4).rx_rate == 2_000_000
    chain = clock_chain(30_720_000, fir_intdec=2)
    assert 25e6 <= chain.rx[0] <= 640e6 and chain.rx_rate == chain.tx[-1] == 30_720_000


def test_receive_after_transmit_returns_what_was_sent(pluto, emulator):
    before, _ = pluto.receive(1920)  # the RX buffer now streams; the next receive must still be fresh
    sent = tone(1920, 0.5)
    pluto.transmit(sent, cyclic=True, occupied_bw_hz=1e6)
    x, meta = pluto.receive(1920)
    words = emulator.state_for(pluto._sdr).pushes[-1]
    assert np.abs(words).max() == round(0.5 * TX_FULL_SCALE)  # int16 to the DAC, 12 MSBs significant
    # DAC code * 10^((tx gain - cable + rx gain)/20) = 0.5 * 10^(-10/20) of full scale, then the 12-bit ADC.
    expected_amp = 0.5 * 10 ** ((-10 - 50 + 50) / 20)
    assert np.mean(np.abs(x)) == pytest.approx(expected_amp, rel=0.02)
    assert np.mean(np.abs(before)) < 0.01
    spectrum = np.abs(np.fft.fft(x))
    assert np.argmax(spectrum) == round(0.01 * x.size)
    lag = np.argmax(np.abs([np.vdot(np.roll(sent, k), x) for k in range(100)]))
    aligned = np.roll(sent, lag) * expected_amp / 0.5
    assert np.abs(np.vdot(aligned, x)) / (np.linalg.norm(aligned) * np.linalg.norm(x)) > 0.99
    assert meta.clip_count == 0 and meta.temperature_c == pytest.approx(38.5)


def test_rx_codes_are_12_bit_and_clipping_is_counted(pluto, emulator):
    emulator.state_for(pluto._sdr).cable_loss_db = 20.0
    pluto.configure(rx_gain_db=60)
    pluto.transmit(tone(1920, 0.9), cyclic=True, occupied_bw_hz=1e6)
    x, meta = pluto.receive(1920)
    codes = x * RX_FULL_SCALE
    assert np.all(np.abs(codes.real) <= RX_FULL_SCALE) and np.all(np.abs(codes.imag) <= RX_FULL_SCALE)
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)  # whole ADC codes
    assert codes.real.max() == 2047 and codes.real.min() == -2048
    assert meta.clip_count > x.size // 4


def test_rx_lo_offset_moves_the_tone(pluto):
    pluto.configure(rx_lo_hz=2.44e9 - 96e3)
    pluto.transmit(tone(1920, 0.5, 0.01), cyclic=True, occupied_bw_hz=1e6)
    x, _ = pluto.receive(19200)
    peak_hz = np.fft.fftfreq(x.size, 1 / 1.92e6)[np.argmax(np.abs(np.fft.fft(x)))]
    assert peak_hz == pytest.approx(19.2e3 + 96e3, abs=200)


def test_cyclic_buffers_are_replaced_not_refused(pluto, emulator):
    pluto.transmit(tone(1000), cyclic=True, occupied_bw_hz=1e6)
    pluto.transmit(tone(2000), cyclic=True, occupied_bw_hz=1e6)  # pyadi-iio refuses a push over a cyclic one
    pluto.transmit(tone(500), cyclic=False, occupied_bw_hz=1e6)
    assert [p.shape[0] for p in emulator.state_for(pluto._sdr).pushes] == [1000, 2000, 500]
    pluto._sdr.tx_destroy_buffer()
    pluto._sdr.tx_cyclic_buffer = True
    pluto._sdr.tx(tone(100) * 1000)
    with pytest.raises(Exception, match="cyclic"):
        pluto._sdr.tx(tone(100) * 1000)  # the rule the backend works around is pyadi-iio's own


def test_stop_transmit_silences_the_loop(pluto):
    pluto.transmit(tone(), cyclic=True, occupied_bw_hz=1e6)
    on, _ = pluto.receive(1920)
    pluto.stop_transmit()
    off, _ = pluto.receive(1920)
    assert np.mean(np.abs(on)) > 0.1 and np.mean(np.abs(off)) < 0.01


def test_int16_scaling_never_wraps(pluto, emulator):
    x = np.array([1.0 + 0j, -1.0 + 0.5j, 2.0 - 2.0j, 0.25j], np.complex64)
    report = pluto.transmit(x, occupied_bw_hz=1e6)
    assert report.clipped == 1
    words = emulator.state_for(pluto._sdr).pushes[-1]
    np.testing.assert_array_equal(words, [[32767, 0], [-32767, 16384], [32767, -32767], [0, 8192]])


def test_guard_refusal_reaches_nothing(pluto, emulator):
    pluto.configure(tx_gain_db=-5)
    with pytest.raises(TxGuardRefused):
        pluto.transmit(tone(), occupied_bw_hz=1e6)
    assert emulator.state_for(pluto._sdr).pushes == []


def test_faults_map_to_typed_exceptions(pluto, emulator):
    st = emulator.state_for(pluto._sdr)
    pluto.receive(100, timeout_s=0.25)
    assert st.timeout_ms == 250
    st.injected["refill"] = errno.ETIMEDOUT
    with pytest.raises(RadioTimeout):
        pluto.receive(100)
    st.injected["refill"] = errno.ENODEV
    with pytest.raises(RadioDisconnected):
        pluto.receive(100)
    st.injected["attr"] = errno.EIO
    with pytest.raises(RadioDisconnected):
        pluto.configure(rx_gain_db=20)
    with pytest.raises(RadioDisconnected, match="does not answer"):
        open_pluto(emulator, Path("/nonexistent/pluto.xml"))


def test_extended_range_needs_the_ad9364_setting(emulator, tmp_path):
    with pytest.raises(RadioConfigError, match="ad9363a"):
        open_pluto(emulator, extended_range=True)
    xml = tmp_path / "pluto_ad9364.xml"
    xml.write_text(PLUTO_CONTEXT_XML.read_text().replace('value="ad9363a"', 'value="ad9364"')
                   .replace("104473dc59930009ffff1f00c6a7f94ae0", "1044730000000000000000000000000000"))
    emulator.add_pluto(xml)
    r = open_pluto(emulator, xml, extended_range=True)
    r.guard = TxGuard.from_config({"allowed_bands": [[5725e6, 5875e6]], "max_tx_gain_db": -10.0})
    r.configure(lo_hz=5.8e9, rate_sps=30.72e6, bandwidth_hz=40e6, tx_gain_db=-20, rx_gain_db=30)
    assert emulator.state_for(r._sdr).attrs[("ad9361-phy", "voltage0", False, "rf_bandwidth")] == "40000000"
    r.close()


def test_device_refusing_a_setting_is_a_fault(pluto, emulator):
    # A Pluto with the ad9363a chip refuses a 5.8 GHz LO even if a caller bypasses the capability check.
    with pytest.raises(RadioFault, match="configure"):
        pluto._apply(pluto.settings.__class__(lo_hz=5.8e9, rate_sps=1.92e6, bandwidth_hz=1.5e6))


def test_a_rate_the_device_does_not_take_is_refused(pluto, monkeypatch):
    from tests.fakes import iio_emulation

    read_attr = iio_emulation.PlutoState.read_attr

    def rate_off_by_100_hz(self, dev, chan, output, name):
        value = read_attr(self, dev, chan, output, name)
        return str(int(value) + 100) if (dev, chan, name) == ("ad9361-phy", "voltage0", "sampling_frequency") else value

    monkeypatch.setattr(iio_emulation.PlutoState, "read_attr", rate_off_by_100_hz)
    with pytest.raises(RadioConfigError, match="rate 3.84e\\+06 S/s reads back as 3.8401e\\+06"):
        pluto.configure(rate_sps=3.84e6)


def test_emulated_channel_read_is_libiios_conversion(emulator):
    """The emulation converts RX words as libiio's own iio_channel_convert does for the context's scan formats."""
    import ctypes

    iio, _ = _FOUND  # type: ignore[misc]
    ctx = iio.Context(f"xml:{PLUTO_CONTEXT_XML}")
    convert = iio._lib.iio_channel_convert
    convert.restype, convert.argtypes = None, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    words = np.array([0, 1, 0x07FF, 0x0800, 0x0FFF, 0x1234, 0xF800, 0xFFFF, 0x8000], np.uint16).view(np.int16)
    for dev, chan, output in (("cf-ad9361-lpc", "voltage0", False), ("cf-ad9361-dds-core-lpc", "voltage1", True)):
        chn = ctx.find_device(dev).find_channel(chan, output)
        ours = emulator._convert(chn._channel, words)
        theirs = []
        for w in words:
            src, dst = ctypes.c_int16(int(w)), ctypes.c_int16()
            convert(ctypes.cast(chn._channel, ctypes.c_void_p), ctypes.byref(dst), ctypes.byref(src))
            theirs.append(dst.value)
        np.testing.assert_array_equal(ours, theirs)
    # "S" is fully defined: libiio passes the words through, so -2048..2047 relies on the HDL's sign extension,
    # which the emulated ADC reproduces (test_rx_codes_are_12_bit_and_clipping_is_counted).
    rx_fmt = ctx.find_device("cf-ad9361-lpc").find_channel("voltage0").data_format
    assert (rx_fmt.bits, rx_fmt.length, rx_fmt.shift, rx_fmt.is_signed, rx_fmt.is_fully_defined) == (12, 16, 0, 1, 1)
