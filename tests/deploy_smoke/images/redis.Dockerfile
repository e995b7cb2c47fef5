# CI's stand-in for the official redis image (no registry is reachable there): Debian's
# redis-server on the local base, running as the user redis with its data in /data, and a
# docker-entrypoint.sh like the official one's (deploy/docker-compose.yml calls it). Built
# by scripts/build-images.sh; operators use the official image.
ARG BASE
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      redis-server >/dev/null \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && mkdir /data && chown redis:redis /data
COPY docker-entrypoint-redis.sh /usr/local/bin/docker-entrypoint.sh
USER redis
WORKDIR /data
LABEL org.labci.image=redis
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
