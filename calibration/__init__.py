"""Measurements (EVM, ACLR/ACS/ACIR, kappa split) and the phi fit. Imports only radio."""
