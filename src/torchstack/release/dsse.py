"""DSSE envelopes (Dead Simple Signing Envelope v1): the signed wrapper of every attestation.

The signature covers the PAE bytes, `DSSEv1 <len(type)> <type> <len(body)> <body>`, where the
lengths count bytes (not characters) in ASCII decimal. The JSON form is what cosign stores as an
`.att` layer: `{"payloadType", "payload": b64(body), "signatures": [{"keyid": "", "sig": b64}]}`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from torchstack.release.keys import SigningKey, VerifyKey

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
MAX_SIGNATURES = 16  # each one is an ECDSA verification; cosign writes one


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding: what is signed, so type and body cannot be confused."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, DER signature)

    def to_json(self) -> bytes:
        document = {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode("ascii")}
                           for keyid, sig in self.signatures],
        }
        return json.dumps(document, separators=(",", ":")).encode("utf-8")

    def verified_by(self, key: VerifyKey) -> bool:
        """Whether any signature is `key`'s over this envelope's PAE bytes."""
        message = pae(self.payload_type, self.payload)
        return any(key.verify(message, sig) for _, sig in self.signatures)


def sign(payload: bytes, key: SigningKey,
         payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> Envelope:
    """One signature, keyid "" as cosign writes it (the key is named by the verifier)."""
    return Envelope(payload_type, payload, (("", key.sign(pae(payload_type, payload))),))


def parse_envelope(data: bytes) -> Envelope:
    """The envelope in `data`; ValueError saying what is wrong when it is not one."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    payload_type, payload, signatures = (document.get("payloadType"), document.get("payload"),
                                         document.get("signatures"))
    if not isinstance(payload_type, str) or not isinstance(payload, str):
        raise ValueError("payloadType or payload is missing")
    if not isinstance(signatures, list) or not signatures:
        raise ValueError("no signatures")
    if len(signatures) > MAX_SIGNATURES:
        raise ValueError(f"more than {MAX_SIGNATURES} signatures")
    pairs = []
    try:
        body = base64.b64decode(payload, validate=True)
        for entry in signatures:
            if not isinstance(entry, dict) or not isinstance(entry.get("sig"), str):
                raise ValueError("a signature entry has no sig")
            pairs.append((str(entry.get("keyid") or ""),
                          base64.b64decode(entry["sig"], validate=True)))
    except binascii.Error:
        raise ValueError("payload or sig is not base64") from None
    return Envelope(payload_type, body, tuple(pairs))
