"""A throwaway TLS PKI for the integration tests, written where kv-server's ``--tls-*``
flags can read it (GnuPG keyrings are kv-client's tests' gpg_keyrings.py).
"""

from __future__ import annotations

from pathlib import Path

import trustme

from integration_helpers import TlsFiles


def write_tls_files(ca: trustme.CA, where: Path, *names: str) -> tuple[TlsFiles, Path]:
    """A server certificate for ``names`` signed by ``ca``, and the CA certificate's file.

    The CA file is for clients to trust; it is not put in ``TlsFiles.ca``, which
    would make the server demand client certificates.
    """
    where.mkdir(parents=True, exist_ok=True)
    issued = ca.issue_cert(*names)
    files = TlsFiles(where / "server.pem", where / "server.key")
    issued.cert_chain_pems[0].write_to_path(str(files.cert))
    issued.private_key_pem.write_to_path(str(files.key))
    ca_file = where / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return files, ca_file
