#!/bin/sh
# Installs deploy/redis/users.acl as Redis's aclfile on first start (docker-compose.yml runs
# it in the redis container; `install-acl.sh EXAMPLE PASSWORD_FILE TARGET`).
#
# TARGET sits in Redis's data volume, not a bind mount of the example: `ACL SAVE` (which the
# server sends when it adds or drops a runner's user, LABCI_REDIS_RUNNER_ACL) writes a new
# file beside TARGET and renames it over TARGET, so both the file and its directory must be
# writable. An existing TARGET is kept: it holds the runners' users.
#
# Redis refuses comments in an aclfile: they are dropped here. The server's password is read
# from PASSWORD_FILE; it also goes into the redis_url secret, so it must be URL-safe.
set -eu
example=$1 password_file=$2 target=$3
if [ -f "$target" ]; then
  exit 0
fi
password=$(cat "$password_file")
case "$password" in
  "" | *[!A-Za-z0-9._~-]*)
    echo "install-acl: $password_file must hold letters, digits and . _ ~ - only" >&2
    exit 1
    ;;
esac
sed -e '/^#/d' -e '/^[[:space:]]*$/d' \
  -e "s|>CHANGE-ME-server-password|>$password|" "$example" >"$target.partial"
chmod 600 "$target.partial"
mv "$target.partial" "$target"
