"""CurveZMQ keys for remote radios: generating keypairs, reading them, and the server's allow-list.

Files are ZeroMQ certificates (``zmq.auth``): ``NAME.key`` holds the public key, ``NAME.key_secret`` the public and
the secret key. A server's key directory (``testbed serve --keys DIR``) holds::

    DIR/server.key                     the server's public key: give it to clients (config server_key)
    DIR/server.key_secret              the server's keypair: never leaves the server
    DIR/authorized_clients/*.key       public keys of the clients allowed to connect (the allow-list)

Keys are Z85 text (40 characters for 32 bytes); a config may give ``server_key`` as that text or as a path to the
``.key`` file.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from radio.errors import RadioConfigError

SERVER_KEY_NAME = "server"
AUTHORIZED_DIR = "authorized_clients"
_Z85_KEY = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Keypair:
    """A CurveZMQ keypair as Z85 bytes (40 bytes each); ``secret`` is None for a public-only certificate."""

    public: bytes
    secret: bytes | None

    @property
    def public_text(self) -> str:
        return self.public.decode("ascii")


def generate_keypair(out_dir: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Write ``out_dir/NAME.key`` and ``out_dir/NAME.key_secret`` (secret file mode 0600); refuse to overwrite.

    Returns the (public, secret) file paths."""
    import zmq.auth

    if not isinstance(name, str) or not _NAME.match(name):
        raise RadioConfigError(f"key name {name!r}; allowed: a letter or digit then up to 63 of A-Z a-z 0-9 _ . -")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    public, secret = out / f"{name}.key", out / f"{name}.key_secret"
    for p in (public, secret):
        if p.exists():
            raise RadioConfigError(f"{p} already exists; allowed: a name with no keys yet (remove the old files "
                                   f"to replace them)")
    pub_path, sec_path = zmq.auth.create_certificates(str(out), name)
    os.chmod(sec_path, 0o600)
    return Path(pub_path), Path(sec_path)


def load_keypair(path: str | os.PathLike[str]) -> Keypair:
    """Read a certificate file (``.key`` or ``.key_secret``); raise RadioConfigError naming the file if unusable."""
    import zmq.auth

    p = Path(path)
    if not p.is_file():
        raise RadioConfigError(f"key file {p} does not exist; make one with `testbed keys generate`")
    try:
        public, secret = zmq.auth.load_certificate(str(p))
    except (ValueError, OSError) as e:
        raise RadioConfigError(f"key file {p} is not a ZeroMQ certificate: {e}") from None
    if public is None or not _Z85_KEY.match(public.decode("ascii", "replace")):
        raise RadioConfigError(f"key file {p} has no valid public key")
    return Keypair(public, secret)


def load_secret_keypair(path: str | os.PathLike[str]) -> Keypair:
    """Read a ``.key_secret`` file; raise RadioConfigError when it holds no secret key."""
    pair = load_keypair(path)
    if pair.secret is None:
        raise RadioConfigError(f"key file {path} holds only a public key; allowed: a NAME.key_secret file")
    return pair


def parse_public_key(value: str, base_dir: str | os.PathLike[str] | None = None) -> bytes:
    """A public key given as 40 Z85 characters or as a path to a ``.key`` file (relative to ``base_dir``)."""
    if not isinstance(value, str) or not value:
        raise RadioConfigError(f"public key {value!r}; allowed: 40 Z85 characters or the path of a NAME.key file")
    if _Z85_KEY.match(value) and not Path(value).exists():
        return value.encode("ascii")
    p = Path(value).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    if not p.exists():
        raise RadioConfigError(f"public key {value!r} is neither 40 Z85 characters nor an existing key file ({p})")
    return load_keypair(p).public


def load_allow_list(directory: str | os.PathLike[str]) -> dict[bytes, str]:
    """Public keys (Z85 bytes) of every ``*.key`` file in ``directory`` -> the file's name (for the logs)."""
    d = Path(directory)
    if not d.is_dir():
        raise RadioConfigError(f"allow-list directory {d} does not exist; put the clients' NAME.key files there "
                               f"(`testbed keys authorize`)")
    allowed = {}
    for f in sorted(d.glob("*.key")):
        allowed[load_keypair(f).public] = f.stem
    return allowed


@dataclass(frozen=True)
class ServerKeys:
    """What a CurveZMQ server needs: its keypair and the public keys of the clients it accepts."""

    keypair: Keypair
    allowed_clients: dict[bytes, str]

    @classmethod
    def from_directory(cls, directory: str | os.PathLike[str]) -> "ServerKeys":
        """Read ``DIR/server.key_secret`` and ``DIR/authorized_clients/*.key``; an empty allow-list is an error
        (the server would refuse everyone)."""
        d = Path(directory)
        if not d.is_dir():
            raise RadioConfigError(f"key directory {d} does not exist; make it with "
                                   f"`testbed keys generate --out {d} --name {SERVER_KEY_NAME}`")
        pair = load_secret_keypair(d / f"{SERVER_KEY_NAME}.key_secret")
        allowed = load_allow_list(d / AUTHORIZED_DIR)
        if not allowed:
            raise RadioConfigError(f"no client is authorized in {d / AUTHORIZED_DIR}; allowed: at least one "
                                   f"NAME.key file there (`testbed keys authorize --keys {d} CLIENT.key`)")
        return cls(pair, allowed)


def authorize_client(key_dir: str | os.PathLike[str], public_key_file: str | os.PathLike[str]) -> Path:
    """Copy a client's public certificate into ``key_dir/authorized_clients/``; return the new path.

    A secret certificate is refused: only public keys belong on the server."""
    src = Path(public_key_file)
    pair = load_keypair(src)
    if pair.secret is not None:
        raise RadioConfigError(f"{src} holds a secret key; allowed: the public NAME.key file only")
    dest_dir = Path(key_dir) / AUTHORIZED_DIR
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.name
    shutil.copyfile(src, dest)
    return dest


__all__ = ["AUTHORIZED_DIR", "Keypair", "SERVER_KEY_NAME", "ServerKeys", "authorize_client", "generate_keypair",
           "load_allow_list", "load_keypair", "load_secret_keypair", "parse_public_key"]
