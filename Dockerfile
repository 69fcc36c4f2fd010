# Portcullis container image.
#
# This image does NOT compile anything. It ships exactly the binary that
# scripts/build-release built and tested (ldd check against this base image,
# --version, check-config on the example config), so what runs in production
# is what passed those checks:
#
#   scripts/build-release                 # -> dist/portcullis
#   docker build -t portcullis:0.1.0 .
#
# Build on Debian 12 (glibc 2.36) or older; build-release refuses a binary
# that needs a newer glibc than this base image has.
#
# Runtime contract:
#   - runs as the distroless "nonroot" user (uid/gid 65532), no shell, no package manager;
#   - writes nothing to disk: works with readOnlyRootFilesystem: true;
#   - reads its config from /etc/portcullis/portcullis.toml (mount a ConfigMap
#     there as a directory, not with subPath, so hot reload sees updates);
#   - 8080: gateway listener; 9090: admin listener (/healthz /readyz /metrics).
#     Set [admin] listen = "0.0.0.0:9090" in the config so kubelet probes reach it.
FROM gcr.io/distroless/cc-debian12:nonroot

COPY --chown=0:0 dist/portcullis /portcullis

USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/portcullis"]
CMD ["run", "-c", "/etc/portcullis/portcullis.toml"]
