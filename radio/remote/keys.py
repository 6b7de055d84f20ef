"""CurveZMQ keys for remote radios: generating keypairs, reading them, and the server's allow-list.

Files are ZeroMQ certificates (``zmq.auth``): ``NAME.key`` holds the public key, ``NAME.key_secret`` the public and
the secret key. A server's key directory (``testbed serve --keys DIR``) holds::

    DIR/server.key                     the server's public key: give it to clients (config server_key)
    DIR/server.key_secret              the server's keypair: never leaves the server
    DIR/authorized_clients/*.key       public keys of the clients allowed to connect (the allow-list)

:func:`authorize_client` names each allowed key by its fingerprint (``FINGERPRINT.key``, see :func:`fingerprint`)
and keeps an optional human label in the certificate's ``metadata`` section, so two controllers whose key files
have the same name never replace each other. Files named otherwise (``NAME.key``, as earlier versions wrote them)
are still allowed, with ``NAME`` as their label.

Keys are Z85 text (40 characters for 32 bytes); a config may give ``server_key`` as that text or as a path to the
``.key`` file.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from radio.errors import RadioConfigError

SERVER_KEY_NAME = "server"
AUTHORIZED_DIR = "authorized_clients"
_Z85_KEY = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FINGERPRINT_HEX_DIGITS = 16
_FINGERPRINT_FILE = re.compile(r"^[0-9a-f]{16}\.key$")
_LABEL_LINE = re.compile(r'^\s*label\s*=\s*"?(?P<label>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})"?\s*$')


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


def fingerprint(public: bytes) -> str:
    """Short name of a public key (Z85 bytes): the first 16 hex digits of SHA-256 of its 32 raw bytes."""
    from zmq.utils import z85

    if not isinstance(public, bytes) or not _Z85_KEY.match(public.decode("ascii", "replace")):
        raise RadioConfigError(f"public key {public!r}; allowed: 40 Z85 characters")
    return hashlib.sha256(z85.decode(public)).hexdigest()[:FINGERPRINT_HEX_DIGITS]


@dataclass(frozen=True)
class AuthorizedKey:
    """One entry of a server's allow-list: the client's public key (Z85 bytes), its fingerprint, its label (None
    when it was authorized without one) and the file it is kept in."""

    public: bytes
    fingerprint: str
    label: str | None
    path: Path

    def describe(self) -> str:
        """``label (fingerprint)`` or the fingerprint alone, as the server's log names a client."""
        return f"{self.label} ({self.fingerprint})" if self.label else self.fingerprint

    def as_dict(self) -> dict[str, str | None]:
        return {"fingerprint": self.fingerprint, "label": self.label, "file": str(self.path),
                "public_key": self.public.decode("ascii")}


def _read_label(path: Path) -> str | None:
    """The ``label`` of a certificate's ``metadata`` section, if it has one."""
    in_metadata = False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            in_metadata = line.strip() == "metadata"
            continue
        m = _LABEL_LINE.match(line) if in_metadata else None
        if m:
            return m["label"]
    return None


def list_authorized(directory: str | os.PathLike[str]) -> list[AuthorizedKey]:
    """Every ``*.key`` file of an allow-list directory, sorted by file name. A file named by its key's fingerprint
    carries its label inside; any other ``NAME.key`` is labelled ``NAME``. Raise RadioConfigError for a missing
    directory or an unreadable file (naming it)."""
    d = Path(directory)
    if not d.is_dir():
        raise RadioConfigError(f"allow-list directory {d} does not exist; put the clients' NAME.key files there "
                               f"(`testbed keys authorize`)")
    entries = []
    for f in sorted(d.glob("*.key")):
        pair = load_keypair(f)
        fp = fingerprint(pair.public)
        label = _read_label(f) if _FINGERPRINT_FILE.match(f.name) else f.stem
        entries.append(AuthorizedKey(pair.public, fp, label, f))
    return entries


def load_allow_list(directory: str | os.PathLike[str]) -> dict[bytes, str]:
    """Public keys (Z85 bytes) of every ``*.key`` file in ``directory`` -> how the logs name the client
    (``label (fingerprint)``)."""
    return {entry.public: entry.describe() for entry in list_authorized(directory)}


def allow_list_signature(directory: str | os.PathLike[str]) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime in ns) of every ``*.key`` file: changes whenever a key is authorized or revoked, and is
    cheap enough to take on every handshake. Empty when the directory is missing."""
    try:
        with os.scandir(directory) as it:
            found = []
            for e in it:
                if e.name.endswith(".key"):
                    st = e.stat()
                    found.append((e.name, st.st_size, st.st_mtime_ns))
    except OSError:
        return ()
    return tuple(sorted(found))


@dataclass(frozen=True)
class ServerKeys:
    """What a CurveZMQ server needs: its keypair and the public keys of the clients it accepts."""

    keypair: Keypair
    allowed_clients: dict[bytes, str]
    """Allowed public key (Z85 bytes) -> how the logs name that client."""
    allow_list_dir: Path | None = None
    """Where ``allowed_clients`` was read from (a running server re-reads it when it changes); None: fixed."""

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
        return cls(pair, allowed, d / AUTHORIZED_DIR)


def _write_public_certificate(path: Path, public: bytes, label: str | None) -> None:
    """A ZeroMQ public certificate with ``label`` in its metadata, written whole or not at all (a server reading
    the directory meanwhile never sees half a file)."""
    meta = f'    label = "{label}"\n' if label else ""
    text = ("#   ZeroMQ CURVE Public Certificate of a client allowed to connect (testbed keys authorize)\n"
            f"metadata\n{meta}curve\n    public-key = \"{public.decode('ascii')}\"\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def authorize_client(key_dir: str | os.PathLike[str], public_key_file: str | os.PathLike[str],
                     label: str | None = None) -> tuple[AuthorizedKey, bool]:
    """Allow a client: write its public key as ``key_dir/authorized_clients/FINGERPRINT.key`` with ``label``.

    Returns (the entry, whether it is new). Authorizing a key that is already allowed changes nothing (and is not
    an error when ``label`` is None or the same). Refused with RadioConfigError: a secret certificate (only public
    keys belong on the server), a label another key already has, a relabelling, or a file of that name holding
    another key."""
    src = Path(public_key_file)
    pair = load_keypair(src)
    if pair.secret is not None:
        raise RadioConfigError(f"{src} holds a secret key; allowed: the public NAME.key file only")
    if label is not None and (not isinstance(label, str) or not _NAME.match(label)):
        raise RadioConfigError(f"label {label!r}; allowed: a letter or digit then up to 63 of A-Z a-z 0-9 _ . -")
    dest_dir = Path(key_dir) / AUTHORIZED_DIR
    dest_dir.mkdir(parents=True, exist_ok=True)
    existing = list_authorized(dest_dir)
    fp = fingerprint(pair.public)
    for entry in existing:
        if entry.public == pair.public:
            if label is not None and label != entry.label:
                raise RadioConfigError(f"key {fp} is already authorized as {entry.label!r} ({entry.path}); allowed: "
                                       f"the same --name, or `testbed keys revoke` it first to relabel it")
            return entry, False
    if label is not None:
        clash = [e for e in existing if e.label == label]
        if clash:
            raise RadioConfigError(f"label {label!r} already names key {clash[0].fingerprint} ({clash[0].path}); "
                                   f"allowed: another --name")
    dest = dest_dir / f"{fp}.key"
    if dest.exists():  # only a file written by hand can get here: the loop above saw every *.key
        raise RadioConfigError(f"{dest} exists and holds another key; allowed: remove it first")
    _write_public_certificate(dest, pair.public, label)
    return AuthorizedKey(pair.public, fp, label, dest), True


def revoke_client(key_dir: str | os.PathLike[str], name: str) -> AuthorizedKey:
    """Remove exactly one allowed key, named by its fingerprint (or the start of it, at least 6 hex digits), its
    label or its public key; return it. An unknown or ambiguous name raises RadioConfigError listing the
    candidates, and nothing is removed."""
    entries = list_authorized(Path(key_dir) / AUTHORIZED_DIR)
    wanted = name.strip() if isinstance(name, str) else ""
    lowered = wanted.lower()
    matches = [e for e in entries if wanted and (
        e.label == wanted or e.public.decode("ascii") == wanted
        or (len(lowered) >= 6 and e.fingerprint.startswith(lowered)))]
    listing = ", ".join(e.describe() for e in (matches if len(matches) > 1 else entries)) or "none"
    if not matches:
        raise RadioConfigError(f"no authorized key is named {name!r}; allowed: a fingerprint or label of: {listing}")
    if len(matches) > 1:
        raise RadioConfigError(f"{name!r} names {len(matches)} keys: {listing}; allowed: one fingerprint")
    matches[0].path.unlink()
    return matches[0]


__all__ = ["AUTHORIZED_DIR", "AuthorizedKey", "Keypair", "SERVER_KEY_NAME", "ServerKeys", "allow_list_signature",
           "authorize_client", "fingerprint", "generate_keypair", "list_authorized", "load_allow_list",
           "load_keypair", "load_secret_keypair", "parse_public_key", "revoke_client"]
