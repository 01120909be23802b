"""The device's certificates: the thumbprint Windows names them by, and the PKCS#7 of a ROBO renewal."""
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7


def thumbprint(cert):
    """Uppercase hex SHA-1 of the DER certificate: what Windows calls a thumbprint."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def signed_renewal_request(certificate, private_key, csr_der):
    """The PKCS#7 of a ROBO renewal (MS-MDE2 3.5; MS-WCCE 3.1.1.4.3.2.1): SignedData around the new
    PKCS#10, signed by the key of the certificate being renewed, which it carries."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(csr_der).add_signer(certificate, private_key, hashes.SHA256())
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
