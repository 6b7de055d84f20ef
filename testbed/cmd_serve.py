"""``testbed serve``: expose one radio over ZeroMQ; ``testbed keys``: CurveZMQ keypairs and the allow-list.

On the host the radio is plugged into::

    testbed keys generate --out ~/.config/testbed/server-keys --name server
    testbed keys authorize --keys ~/.config/testbed/server-keys --name lab-pc controller.key
    testbed keys list --keys ~/.config/testbed/server-keys
    testbed serve --radio pluto0 --bind tcp://0.0.0.0:5555 --keys ~/.config/testbed/server-keys

On the controller: ``testbed keys generate --out ~/.config/testbed/keys --name client`` and a
``[radios.NAME] driver = "remote"`` entry with the endpoint and the server key ``serve`` prints.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from radio.remote.keys import (AUTHORIZED_DIR, ServerKeys, authorize_client, generate_keypair, list_authorized,
                               load_keypair, revoke_client)
from radio.remote.protocol import MAX_SAMPLES_PER_MESSAGE
from radio.remote.server import RadioServer
from testbed.cliutil import BadInput, emit, handle_errors, json_option
from testbed.inventory import load_config, open_radios, radio_options


@click.command()
@click.option("--radio", "radio_name", required=True, help="The radio to serve (any name of the config: sim0, pluto0).")
@click.option("--bind", "bind", required=True,
              help="tcp://ADDRESS:PORT to listen on; PORT 0 picks a free port (printed).")
@click.option("--keys", "keys_dir", type=click.Path(file_okay=False), default=None, envvar="TESTBED_SERVER_KEYS",
              help="Key directory: server.key_secret and authorized_clients/*.key (see `testbed keys`).")
@click.option("--insecure", is_flag=True,
              help="Plaintext without authentication; refused unless ADDRESS is a loopback address.")
@click.option("--max-samples", type=click.IntRange(1, MAX_SAMPLES_PER_MESSAGE), default=MAX_SAMPLES_PER_MESSAGE,
              show_default=True, help="Largest transmit or receive buffer of one request, samples.")
@click.option("--client-timeout", "client_timeout_s", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True, help="Stop a cyclic transmission whose client was silent this long, s.")
@click.option("--seed", type=int, default=None, help="Seed of the simulated air (simulated radios only).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, help="Logging on stderr (refused clients are logged at warning).")
@radio_options
@json_option
@handle_errors
def serve(radio_name: str, bind: str, keys_dir: str | None, insecure: bool, max_samples: int,
          client_timeout_s: float, seed: int | None, log_level: str, config_path: str | None,
          sim_config: str | None, as_json: bool) -> None:
    """Serve one radio over ZeroMQ (CurveZMQ) until SIGINT or SIGTERM.

    The radio is opened with this host's config, including its TX guard: a client can never transmit what this
    host's [safety] refuses. Prints the endpoint and the server's public key (the clients' server_key).
    """
    if insecure and keys_dir is not None:
        raise BadInput("--insecure and --keys both given; allowed: --keys DIR, or --insecure on a loopback address")
    if not insecure and keys_dir is None:
        raise BadInput("no --keys DIR; allowed: a key directory made with `testbed keys generate --out DIR --name "
                       "server` (and clients authorized with `testbed keys authorize`), or --insecure on loopback")
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keys = ServerKeys.from_directory(keys_dir) if keys_dir is not None else None
    cfg = load_config(config_path, sim_config)
    cfg.entry(radio_name)  # an unknown name is bad input before anything opens
    stop = threading.Event()
    with open_radios([radio_name], cfg, seed=seed) as opened:
        radio = opened[radio_name]
        server = RadioServer(radio, bind, keys=keys, insecure=insecure, max_samples=max_samples,
                             client_timeout_s=client_timeout_s)
        endpoint = server.open()
        ready = {"event": "listening", "endpoint": endpoint, "radio": radio_name, "driver": radio.driver,
                 "server_key": server.public_key, "insecure": insecure}
        if as_json:
            emit(ready, True)
        else:
            click.echo(f"serving {radio_name} ({radio.driver}) on {endpoint}")
            click.echo(f"server key: {server.public_key}" if server.public_key else
                       "plaintext, loopback only (--insecure)")
        sys.stdout.flush()
        previous = _install_stop_handlers(stop)
        try:
            server.serve_forever(stop)
        finally:
            _restore_handlers(previous)
    result = {"event": "stopped", "endpoint": endpoint, "radio": radio_name, "server_key": server.public_key,
              "stats": server.stats.as_dict()}
    emit(result, as_json, lambda r: click.echo(
        f"stopped serving {radio_name}: {r['stats']['requests']} requests, {r['stats']['refused_clients']} refused "
        f"connections, {r['stats']['malformed']} malformed"))


def _install_stop_handlers(stop: threading.Event) -> dict[int, Any]:
    """SIGINT and SIGTERM set ``stop`` (the server finishes its request and shuts down cleanly)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda *_: stop.set())
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@click.group()
def keys() -> None:
    """CurveZMQ keypairs for `testbed serve` and remote radios, and the server's allow-list of clients."""


@keys.command("generate")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory to write NAME.key (public) and NAME.key_secret (secret, mode 0600) into.")
@click.option("--name", default="client", show_default=True,
              help="Key name: 'server' for a server's key directory, any name for a client.")
@json_option
@handle_errors
def generate(out_dir: str, name: str, as_json: bool) -> None:
    """Generate a keypair. Never overwrites existing keys."""
    public, secret = generate_keypair(out_dir, name)
    result = {"public_file": str(public), "secret_file": str(secret),
              "public_key": load_keypair(public).public_text}
    emit(result, as_json, lambda r: click.echo(
        f"wrote {r['public_file']} and {r['secret_file']}\npublic key: {r['public_key']}"))


@keys.command("authorize")
@click.option("--keys", "keys_dir", type=click.Path(file_okay=False), required=True,
              help="The server's key directory (the one given to `testbed serve --keys`).")
@click.option("--name", "label", default=None,
              help="A label for this client (shown by `testbed keys list`, usable with `revoke`); must be unique.")
@click.argument("public_key_file", type=click.Path(dir_okay=False))
@json_option
@handle_errors
def authorize(keys_dir: str, label: str | None, public_key_file: str, as_json: bool) -> None:
    """Allow the client whose public key is PUBLIC_KEY_FILE (its NAME.key) to connect to this server.

    The key is kept as authorized_clients/FINGERPRINT.key, so clients whose files share a name never replace each
    other; authorizing the same key again changes nothing. A running server applies it at the next connection."""
    entry, added = authorize_client(keys_dir, public_key_file, label)
    result = {**entry.as_dict(), "authorized": str(entry.path), "added": added}
    emit(result, as_json, lambda r: click.echo(
        f"{'authorized' if r['added'] else 'already authorized'} {r['public_key']} as {entry.describe()} "
        f"({r['file']})"))


@keys.command("list")
@click.option("--keys", "keys_dir", type=click.Path(file_okay=False), required=True,
              help="The server's key directory (the one given to `testbed serve --keys`).")
@json_option
@handle_errors
def list_keys(keys_dir: str, as_json: bool) -> None:
    """List the clients allowed to connect: fingerprint, label and file of each."""
    entries = list_authorized(Path(keys_dir) / AUTHORIZED_DIR)
    result = {"authorized": [e.as_dict() for e in entries]}

    def human(r: dict[str, Any]) -> None:
        if not r["authorized"]:
            click.echo("no client is authorized")
        for e in r["authorized"]:
            click.echo(f"{e['fingerprint']}  {e['label'] or '-':<24}  {e['file']}")

    emit(result, as_json, human)


@keys.command("revoke")
@click.option("--keys", "keys_dir", type=click.Path(file_okay=False), required=True,
              help="The server's key directory (the one given to `testbed serve --keys`).")
@click.argument("name")
@json_option
@handle_errors
def revoke(keys_dir: str, name: str, as_json: bool) -> None:
    """Remove the one authorized client NAME names (its fingerprint or label). An unknown or ambiguous NAME
    changes nothing (exit 2, naming the candidates). A running server refuses the key from its next request on."""
    entry = revoke_client(keys_dir, name)
    result = {**entry.as_dict(), "revoked": str(entry.path)}
    emit(result, as_json, lambda r: click.echo(f"revoked {entry.describe()} ({r['file']})"))
