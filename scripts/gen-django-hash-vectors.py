#!/usr/bin/env python3
"""Generate password-hash test vectors with real Django.

Writes crates/portcullis/tests/data/django_hash_vectors.json: a list of
{"algorithm", "password", "encoded"} objects, each `encoded` produced by
Django's own hashers (django.contrib.auth.hashers.make_password), so that
portcullis::password can be checked against the reference implementation.

Work factors are lowered (by subclassing Django's hashers) to keep the Rust
tests fast, except for one pbkdf2_sha256 vector at Django's default iteration
count.

Requirements: pip install django argon2-cffi bcrypt
Usage: python3 scripts/gen-django-hash-vectors.py
       python3 scripts/gen-django-hash-vectors.py --verify FILE
           checks that Django verifies every [password, encoded] pair in the
           JSON list FILE (e.g. hashes written by portcullis) and rejects a
           wrong password for each.
"""

import json
import pathlib
import sys

import django
from django.conf import settings

settings.configure(
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
        "django.contrib.auth.hashers.BCryptPasswordHasher",
        "django.contrib.auth.hashers.ScryptPasswordHasher",
    ],
)
django.setup()

import argon2  # noqa: E402
from django.contrib.auth import hashers  # noqa: E402
from django.contrib.auth.hashers import check_password, make_password  # noqa: E402

OUT = (
    pathlib.Path(__file__).resolve().parent.parent
    / "crates/portcullis/tests/data/django_hash_vectors.json"
)

PASSWORDS = [
    "",
    "password",
    "pässwörd 🔐",
    ("The quick brown fox jumps over the lazy dog 0123456789! " * 2)[:100],
]
assert len(PASSWORDS[3]) == 100


class Pbkdf2Fast(hashers.PBKDF2PasswordHasher):
    iterations = 1000


class Pbkdf2Fast2(hashers.PBKDF2PasswordHasher):
    iterations = 2000


class Pbkdf2Sha1Fast(hashers.PBKDF2SHA1PasswordHasher):
    iterations = 1000


class Argon2Fast(hashers.Argon2PasswordHasher):
    memory_cost = 1024
    time_cost = 1
    parallelism = 1


class Argon2FastP2(hashers.Argon2PasswordHasher):
    memory_cost = 256
    time_cost = 2
    parallelism = 2


class BcryptSha256Fast(hashers.BCryptSHA256PasswordHasher):
    rounds = 4


class BcryptFast(hashers.BCryptPasswordHasher):
    rounds = 4


class ScryptFast(hashers.ScryptPasswordHasher):
    work_factor = 2**10


class ScryptFastP1(hashers.ScryptPasswordHasher):
    work_factor = 2**10
    parallelism = 1


def legacy_argon2(password, kind):
    """argon2i / argon2d hashes as older argon2-cffi setups produced them.

    Django only writes argon2id today but verifies any variant argon2-cffi
    accepts; the salt is a Django salt string, as Django passes it.
    """
    hasher = Argon2Fast()
    data = argon2.low_level.hash_secret(
        password.encode(),
        hasher.salt().encode(),
        time_cost=1,
        memory_cost=1024,
        parallelism=1,
        hash_len=32,
        type=kind,
    )
    return hasher.algorithm + data.decode("ascii")


def main():
    vectors = []

    def add(hasher, password, encoded=None):
        if encoded is None:
            encoded = make_password(password, hasher=hasher)
        # Self-check against Django itself.
        assert hasher.verify(password, encoded), (hasher.algorithm, password)
        assert not hasher.verify(password + "x", encoded)
        assert check_password(password, encoded)
        vectors.append(
            {"algorithm": hasher.algorithm, "password": password, "encoded": encoded}
        )

    fast = [
        Pbkdf2Fast(),
        Pbkdf2Fast2(),
        Pbkdf2Sha1Fast(),
        Argon2Fast(),
        Argon2FastP2(),
        BcryptSha256Fast(),
        BcryptFast(),
        ScryptFast(),
        ScryptFastP1(),
    ]
    for hasher in fast:
        for password in PASSWORDS:
            if (
                isinstance(hasher, hashers.BCryptPasswordHasher)
                and len(password.encode()) > 72
            ):
                # bcrypt >= 5 refuses passwords over 72 bytes (older versions
                # silently truncated); Django's plain bcrypt hasher passes the
                # raw password, so there is no vector for this case.
                continue
            add(hasher, password)

    for kind in (argon2.low_level.Type.I, argon2.low_level.Type.D):
        for password in PASSWORDS[:3]:
            add(Argon2Fast(), password, legacy_argon2(password, kind))

    # One vector at Django's real default work factor.
    add(hashers.PBKDF2PasswordHasher(), "password")

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(vectors, indent=2, ensure_ascii=False) + "\n")
    print(
        f"wrote {len(vectors)} vectors to {OUT} (Django {django.__version__})",
        file=sys.stderr,
    )


def verify_file(path):
    """Check hashes written elsewhere (by portcullis) with Django."""
    from django.contrib.auth.hashers import identify_hasher

    pairs = json.loads(pathlib.Path(path).read_text())
    for password, encoded in pairs:
        hasher = identify_hasher(encoded)
        assert hasher.verify(password, encoded), encoded
        assert not hasher.verify(password + "x", encoded), encoded
        print(f"ok {hasher.algorithm} must_update={hasher.must_update(encoded)}")
    print(f"Django {django.__version__} verified {len(pairs)} hashes", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--verify":
        verify_file(sys.argv[2])
    else:
        main()
