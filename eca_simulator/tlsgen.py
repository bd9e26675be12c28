"""A throwaway CA and server certificates for loopback addresses (127.0.0.1/localhost by default)."""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ECA Simulator"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Authority:
    """A CA written to directory/ca.pem; `issue` writes server certificates signed by it."""

    def __init__(self, directory):
        self.directory = directory
        now = datetime.datetime.now(datetime.timezone.utc)
        self._start, self._end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=3650)
        # EC keys: generation is ~1 ms, which keeps simulator start-up fast.
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._cert = (x509.CertificateBuilder()
                      .subject_name(_name("ECA Simulator CA")).issuer_name(_name("ECA Simulator CA"))
                      .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                      .not_valid_before(self._start).not_valid_after(self._end)
                      .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                   content_commitment=False, key_encipherment=False,
                                                   data_encipherment=False, key_agreement=False,
                                                   encipher_only=False, decipher_only=False), critical=True)
                      .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                                     critical=False)
                      .sign(self._key, hashes.SHA256()))
        self.ca_path = os.path.join(directory, "ca.pem")
        with open(self.ca_path, "wb") as f:
            f.write(self._cert.public_bytes(serialization.Encoding.PEM))
        # One key for every server certificate of this CA: they all live in one process.
        self._server_key = ec.generate_private_key(ec.SECP256R1())
        self.key_path = os.path.join(directory, "server.key")
        fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self._server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))

    def issue(self, name, ips, dns_names=()):
        """Write directory/<name>.pem for the given IP addresses and DNS names; return (cert_path, key_path)."""
        sans = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips] + [x509.DNSName(d) for d in dns_names]
        cert = (x509.CertificateBuilder()
                .subject_name(_name(str(ips[0]) if ips else dns_names[0])).issuer_name(self._cert.subject)
                .public_key(self._server_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(self._start).not_valid_after(self._end)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                               critical=False)
                .sign(self._key, hashes.SHA256()))
        cert_path = os.path.join(self.directory, name + ".pem")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, self.key_path


def generate(directory):
    """Write ca.pem, server.pem, server.key (127.0.0.1 and localhost) into directory; return their paths."""
    ca = Authority(directory)
    cert, key = ca.issue("server", ["127.0.0.1"], ["localhost"])
    return ca.ca_path, cert, key
