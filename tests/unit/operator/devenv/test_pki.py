from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from acgs_operator.devenv import pki


def test_pki_chain_and_identities(tmp_path: Path) -> None:
    paths = pki.create(tmp_path / "pki")
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    admin = x509.load_pem_x509_certificate(paths.admin_cert.read_bytes())
    serving = x509.load_pem_x509_certificate(paths.serving_cert.read_bytes())
    for cert in (admin, serving):
        cert.verify_directly_issued_by(ca)
    org = admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert org == "system:masters"
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    assert oct(paths.admin_key.stat().st_mode & 0o777) == "0o600"
