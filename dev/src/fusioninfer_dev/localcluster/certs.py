"""Certificates of the local cluster's webhook and aggregated API servers, made with openssl:
a CA per server and leaf certificates signed by it. Generated once per state dir and kept, so a
restarted server goes on presenting what the registered `caBundle` (and the apiserver's flags)
trust."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SERVER_USAGE = "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
CLIENT_USAGE = "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"


class Signer:
    """openssl in `cert_dir`: `ca()` makes `ca.crt`/`ca.key`, `leaf()` a key and a certificate
    signed by that CA."""

    def __init__(self, cert_dir: Path) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError("openssl not found; install Debian's openssl package")
        self.openssl = openssl
        self.cert_dir = cert_dir
        cert_dir.mkdir(parents=True, exist_ok=True)

    def _run(self, *args: str) -> None:
        subprocess.run([self.openssl, *args], check=True, capture_output=True, cwd=self.cert_dir)

    def ca(self, common_name: str) -> None:
        self._run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", f"/CN={common_name}",
                  "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip

    def leaf(self, name: str, common_name: str, extensions: str) -> None:
        """`<name>.key` and `<name>.crt` for `/CN=common_name` with the x509v3 `extensions`
        (e.g. `subjectAltName=...` plus SERVER_USAGE)."""
        (self.cert_dir / f"{name}.cnf").write_text(f"[req]\ndistinguished_name=dn\n[dn]\n[ext]\n{extensions}")
        self._run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={common_name}",
                  "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        self._run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                  "-days", "3650", "-extfile", f"{name}.cnf", "-extensions", "ext", "-out", f"{name}.crt")  # fmt: skip


def present(cert_dir: Path, files: tuple[str, ...]) -> bool:
    """Whether every file of a generated set is there (then nothing is regenerated)."""
    return all((cert_dir / f).is_file() for f in files)
