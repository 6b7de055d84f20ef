"""Learning agents and classical baselines. Imports only twin."""
