#!/usr/bin/python3
"""Writes the keys and tokens test_jwtauth.c checks into DIR (argv[1]).

Keys come from the openssl CLI, tokens from PyJWT (python3-jwt) with the
current time, so they are real tokens as an identity provider would issue
them. One file per token: DIR/<case>.jwt. The algorithm-confusion token is
built by hand (PyJWT refuses to use a PEM key as an HMAC secret, which is the
point of the attack).
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

import jwt
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

d = sys.argv[1]
now = int(time.time())


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def path(name):
    return os.path.join(d, name)


def genkey(name, *algopts):
    sh("openssl", "genpkey", *algopts, "-out", path(name + ".key"))
    sh("openssl", "pkey", "-in", path(name + ".key"), "-pubout", "-out", path(name + ".pub"))
    with open(path(name + ".key"), "rb") as f:
        return f.read()


rsa1 = genkey("rsa1", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
rsa2 = genkey("rsa2", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
ec256 = genkey("ec256", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
ec384 = genkey("ec384", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384")
secret = base64.b64encode(os.urandom(36))  # 48 printable bytes
with open(path("hs.secret"), "wb") as f:
    f.write(secret + b"\n")


def pub(name):
    with open(path(name + ".pub"), "rb") as f:
        return f.read()


def jwk(alg_cls, name, kid):
    a = alg_cls(alg_cls.SHA256)
    k = json.loads(a.to_jwk(a.prepare_key(pub(name))))
    k["kid"] = kid
    k["use"] = "sig"
    return k


# JWKS with two kids (an RSA and an EC key), and a second set for the reload test
with open(path("jwks.json"), "w") as f:
    json.dump({"keys": [jwk(RSAAlgorithm, "rsa1", "k1"), jwk(ECAlgorithm, "ec256", "k2")]}, f)
with open(path("jwks2.json"), "w") as f:
    json.dump({"keys": [jwk(RSAAlgorithm, "rsa2", "k3")]}, f)

ISS = "https://issuer.test"
AUD = "helios"


def claims(**kw):
    c = {"sub": "alice", "iss": ISS, "aud": AUD, "iat": now - 10, "exp": now + 600}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def put(case, token):
    with open(path(case + ".jwt"), "w") as f:
        f.write(token)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


put("hs256_valid", jwt.encode(claims(), secret, algorithm="HS256"))
put("hs384_valid", jwt.encode(claims(), secret, algorithm="HS384"))
put("hs512_valid", jwt.encode(claims(), secret, algorithm="HS512"))
put("rs256_valid", jwt.encode(claims(), rsa1, algorithm="RS256"))
put("rs384_valid", jwt.encode(claims(), rsa1, algorithm="RS384"))
put("rs512_valid", jwt.encode(claims(), rsa1, algorithm="RS512"))
put("es256_valid", jwt.encode(claims(), ec256, algorithm="ES256"))
put("es384_valid", jwt.encode(claims(), ec384, algorithm="ES384"))
put("rs256_other_key", jwt.encode(claims(), rsa2, algorithm="RS256"))
put("expired", jwt.encode(claims(exp=now - 1000), rsa1, algorithm="RS256"))
put("expired_skew", jwt.encode(claims(exp=now - 120), rsa1, algorithm="RS256"))
put("no_exp", jwt.encode(claims(exp=None), rsa1, algorithm="RS256"))
put("nbf_future", jwt.encode(claims(nbf=now + 1000), rsa1, algorithm="RS256"))
put("nbf_future_skew", jwt.encode(claims(nbf=now + 120), rsa1, algorithm="RS256"))
put("iat_future", jwt.encode(claims(iat=now + 1000), rsa1, algorithm="RS256"))
put("wrong_aud", jwt.encode(claims(aud="other"), rsa1, algorithm="RS256"))
put("aud_array", jwt.encode(claims(aud=["x", AUD]), rsa1, algorithm="RS256"))
put("aud_array_wrong", jwt.encode(claims(aud=["x", "y"]), rsa1, algorithm="RS256"))
put("wrong_iss", jwt.encode(claims(iss="https://evil.test"), rsa1, algorithm="RS256"))
put("wrong_user", jwt.encode(claims(sub="mallory"), rsa1, algorithm="RS256"))
put("tenant", jwt.encode(claims(tenant="acme"), rsa1, algorithm="RS256"))
put("custom_user_claim", jwt.encode(claims(sub="x", preferred_username="alice"), rsa1, algorithm="RS256"))
# alg none: an unsigned token, as PyJWT writes it
put("alg_none", jwt.encode(claims(), None, algorithm="none"))
# algorithm confusion: HS256 with the RSA public key's PEM bytes as the secret
hdr = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64u(json.dumps(claims()).encode())
sig = hmac.new(pub("rsa1"), (hdr + "." + body).encode(), hashlib.sha256).digest()
put("confusion", hdr + "." + body + "." + b64u(sig))
# JWKS: kid picks the key
put("kid1", jwt.encode(claims(), rsa1, algorithm="RS256", headers={"kid": "k1"}))
put("kid2", jwt.encode(claims(), ec256, algorithm="ES256", headers={"kid": "k2"}))
put("kid2_signed_by_k1", jwt.encode(claims(), rsa1, algorithm="RS256", headers={"kid": "k2"}))
put("kid_unknown", jwt.encode(claims(), rsa1, algorithm="RS256", headers={"kid": "k9"}))
put("kid3", jwt.encode(claims(), rsa2, algorithm="RS256", headers={"kid": "k3"}))
