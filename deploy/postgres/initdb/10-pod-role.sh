#!/bin/sh
# The services' role: a login that is no superuser and may create neither databases nor
# roles, owner of the database the migrations fill (compose.yaml's DATABASE_URL). The
# official image runs this once, on an empty data folder, as its superuser (PGPASSWORD set).
set -eu
: "${POD_DB_PASSWORD:?set POD_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
    --set=pod_password="$POD_DB_PASSWORD" <<'SQL'
CREATE ROLE pod LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'pod_password';
CREATE DATABASE pod OWNER pod;
SQL
