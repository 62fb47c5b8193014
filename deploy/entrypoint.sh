#!/bin/sh
# The image's entry point: bring the database up to date, then run the command given
# (`run` by default; `dispatch` for a notification sender beside `gotong run` processes).
# Several processes starting at once is fine: migrations take a lock in the database.
set -eu

gotong db upgrade
exec gotong "${@:-run}"
