"""Numerology tables: 3GPP RB counts, exact CP lengths, 0.5 ms half-subframes."""

import pytest

from radio.ofdm.numerology import NUMEROLOGIES, numerology


@pytest.mark.parametrize("name,n_rb,fft,cp_long,cp_short,rate", [
    ("lte1.4", 6, 128, 10, 9, 1.92e6), ("lte3", 15, 256, 20, 18, 3.84e6), ("lte5", 25, 512, 40, 36, 7.68e6),
    ("lte10", 50, 1024, 80, 72, 15.36e6), ("lte20", 100, 2048, 160, 144, 30.72e6),
])
def test_lte_numerologies_match_36_211(name, n_rb, fft, cp_long, cp_short, rate):
    n = numerology(name)
    assert (n.n_rb, n.fft_size, n.cp_long, n.cp_short, n.sample_rate_hz) == (n_rb, fft, cp_long, cp_short, rate)
    assert n.occupied_bw_hz == pytest.approx(n_rb * 180e3)


@pytest.mark.parametrize("name,n_rb", [("nr5-15k", 25), ("nr20-15k", 106), ("nr50-15k", 270), ("nr5-30k", 11),
                                       ("nr20-30k", 51), ("nr100-30k", 273)])
def test_nr_rb_counts_match_38_101(name, n_rb):
    assert numerology(name).n_rb == n_rb


def test_every_half_subframe_lasts_half_a_millisecond():
    for n in NUMEROLOGIES.values():
        samples = sum(n.symbol_length(l) for l in range(n.symbols_per_half_subframe))
        assert samples / n.sample_rate_hz == pytest.approx(0.5e-3, abs=1e-12), n.name
        assert 12 * n.n_rb < 0.86 * n.fft_size


def test_nr_long_cp_extension_is_fixed_in_time():
    # 16 kappa Tc = 0.52 us whatever the SCS
    for name in ("nr20-15k", "nr20-30k", "nr100-30k"):
        n = numerology(name)
        assert (n.cp_long - n.cp_short) / n.sample_rate_hz == pytest.approx(16 / 30.72e6)


def test_unknown_numerology_lists_allowed_names():
    with pytest.raises(ValueError, match="allowed: .*lte5.*nr20-30k"):
        numerology("lte7")


def test_scaled_numerology_keeps_durations():
    n = numerology("lte5").scaled(15.36e6)
    assert (n.fft_size, n.cp_long, n.cp_short) == (1024, 80, 72)
    with pytest.raises(ValueError, match="allowed"):
        numerology("lte5").scaled(7.7e6)
