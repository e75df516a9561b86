# tests/docker/etcd.Dockerfile -- etcd 3.4 from Debian bookworm, standing in for the image
# deploy/compose.yaml names (quay.io/coreos/etcd:v3.4.23), which no registry here serves:
# the same programs at the same paths (/usr/local/bin/etcd, /usr/local/bin/etcdctl).
# tests/docker/test_image.sh builds it and tags it with that name.
FROM debian:bookworm-slim
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends etcd-server etcd-client \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /usr/bin/etcd /usr/local/bin/etcd \
 && ln -s /usr/bin/etcdctl /usr/local/bin/etcdctl
ENV ETCDCTL_API=3
