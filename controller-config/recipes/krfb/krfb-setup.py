#!/usr/bin/env python3
"""Configures krfb for an unattended remote-desktop check, and keeps its password where ionlab reads it.

  krfb-setup.py CONFIG_DIR OWNER PASSWORD_FILE

Writes CONFIG_DIR/krfbrc (owned by OWNER) so that krfb accepts a viewer with a password and without a
dialog, keeps that password in its own file rather than a wallet (a fresh session has none unlocked), and
announces nothing on the network. The password is new and random, 8 characters (VNC Authentication uses no
more); it goes to PASSWORD_FILE (mode 0600, for the agent, which runs as root: the `remote_desktop` probe's
`password_file`) and, obscured the way KDE's KStringHandler::obscure does, to krfbrc. It is never printed.
"""
import os
import pwd
import secrets
import sys

# No look-alike characters, as krfb's own passwords.
ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LENGTH = 8


def obscure(text):
    """KStringHandler::obscure: every character above '!' becomes U+1001F minus itself (its own inverse)."""
    return "".join(c if ord(c) <= 0x21 else chr(0x1001F - ord(c)) for c in text)


def krfbrc(password):
    return (
        "[Security]\n"
        "allowDesktopControl=true\n"
        "allowUnattendedAccess=true\n"
        "noWallet=true\n"
        f"unattendedPassword={obscure(password)}\n"
        "\n[TCP]\n"
        "publishService=false\n"
        "useDefaultPort=true\n"
        "\n[FrameBuffer]\n"
        "preferredFrameBufferPlugin=pw\n"
    )


def write_private(path, text, mode, owner=None):
    """Writes `path` through a new file of `mode`, renamed into place: never readable by others, even briefly."""
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    if owner is not None:
        os.chown(temporary, owner.pw_uid, owner.pw_gid)
    os.replace(temporary, path)


def main(arguments):
    if len(arguments) != 3:
        sys.exit("usage: krfb-setup.py CONFIG_DIR OWNER PASSWORD_FILE")
    config_dir, owner_name, password_file = arguments
    try:
        owner = pwd.getpwnam(owner_name)
    except KeyError:
        sys.exit(f"krfb-setup: no user {owner_name}")
    password = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    os.makedirs(os.path.dirname(password_file) or ".", mode=0o700, exist_ok=True)
    write_private(password_file, password + "\n", 0o600)
    if not os.path.isdir(config_dir):
        os.makedirs(config_dir, mode=0o700)
        os.chown(config_dir, owner.pw_uid, owner.pw_gid)
    write_private(os.path.join(config_dir, "krfbrc"), krfbrc(password), 0o600, owner)
    print(f"krfb-setup: {config_dir}/krfbrc written for {owner_name}; the password is in {password_file}")


if __name__ == "__main__":
    main(sys.argv[1:])
