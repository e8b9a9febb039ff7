#!/usr/bin/env python3
"""Prints the `openssl s_server` options of a tlscensus policy file,
one per line (the file TOML or JSON): what a server configured by that policy is run with in
make-policy-captures.sh. Usage: policy-server-args.py POLICY.toml CERTDIR

IANA suite names map to OpenSSL's by `openssl ciphers -stdname`; groups by
name (the ML-KEM hybrids, which OpenSSL 3.0 lacks, are left out and said on
stderr); signature schemes are passed as IANA names, which OpenSSL takes.
The server holds an RSA 2048 certificate if the policy signs with RSA and an
ECDSA P-256 one if it signs with ECDSA. A policy that accepts a version
below TLS 1.2 or a SHA-1 signature runs at OpenSSL security level 0.
"""
import subprocess
import sys
import json
import tomllib

VERSIONS = ["SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
OPENSSL_VERSION = {"SSLv3": "SSLv3", "TLSv1.0": "TLSv1", "TLSv1.1": "TLSv1.1",
                   "TLSv1.2": "TLSv1.2", "TLSv1.3": "TLSv1.3"}
GROUPS = {"x25519": "X25519", "x448": "X448", "secp256r1": "P-256", "secp384r1": "P-384",
          "secp521r1": "P-521", "ffdhe2048": "ffdhe2048", "ffdhe3072": "ffdhe3072",
          "ffdhe4096": "ffdhe4096", "ffdhe6144": "ffdhe6144", "ffdhe8192": "ffdhe8192"}


def openssl_names():
    out = subprocess.run(["openssl", "ciphers", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
                         capture_output=True, text=True, check=True).stdout
    names = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "-":
            names[parts[0]] = parts[2]
    return names


def main():
    path = sys.argv[1]
    policy = json.load(open(path)) if path.endswith(".json") else tomllib.load(open(path, "rb"))
    certs = sys.argv[2]
    versions = sorted(policy["versions"], key=VERSIONS.index)
    suites = policy["cipher_suites"]
    if isinstance(suites, dict):
        suites = [s for v in suites.values() for s in v]
    names = openssl_names()
    tls13 = [s for s in suites if s.startswith("TLS_AES_") or s.startswith("TLS_CHACHA20_")]
    tls12 = [names[s] for s in suites if s not in tls13]
    sigalgs = policy.get("signature_algorithms", [])
    legacy = any(v in ("SSLv3", "TLSv1.0", "TLSv1.1") for v in versions) or any(
        "sha1" in s for s in sigalgs)
    args = ["-min_protocol", OPENSSL_VERSION[versions[0]],
            "-max_protocol", OPENSSL_VERSION[versions[-1]]]
    if tls13:
        args += ["-ciphersuites", ":".join(tls13)]
    cipher = ":".join(tls12) if tls12 else "NULL"
    if legacy:
        cipher += ":@SECLEVEL=0"
    args += ["-cipher", cipher]
    groups = []
    for g in policy.get("groups", []):
        if g in GROUPS:
            groups.append(GROUPS[g])
        else:
            print(f"policy-server-args: group {g} left out (OpenSSL 3.0 lacks it)", file=sys.stderr)
    if groups:
        args += ["-groups", ":".join(groups)]
    if sigalgs:
        args += ["-sigalgs", ":".join(sigalgs)]
    rsa = any(s.startswith("rsa_") for s in sigalgs) or any("_RSA_WITH_" in s for s in suites)
    ecdsa = any(s.startswith("ecdsa_") for s in sigalgs)
    keys = (["rsa"] if rsa else []) + (["ec"] if ecdsa else [])
    for i, k in enumerate(keys):
        cert, key = ("-cert", "-key") if i == 0 else ("-dcert", "-dkey")
        args += [cert, f"{certs}/{k}.pem", key, f"{certs}/{k}.key"]
    print("\n".join(args))


main()
