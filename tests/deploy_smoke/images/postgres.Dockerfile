# CI's stand-in for the official postgres image (no registry is reachable there): Debian's
# PostgreSQL 15 on the local base, with the part of the official image's interface that
# deploy/docker-compose.yml uses (see docker-entrypoint-postgres.sh). Built by
# scripts/build-images.sh; operators use the official image.
ARG BASE
FROM ${BASE}
RUN mkdir -p /etc/postgresql-common \
 && echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -o Dpkg::Options::=--force-confold postgresql-15 >/dev/null \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data && chown postgres /var/lib/postgresql/data \
 && chmod 0700 /var/lib/postgresql/data
COPY docker-entrypoint-postgres.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
LABEL org.labci.image=postgres
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
