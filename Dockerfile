# syntax=docker/dockerfile:1
#
# Switchboard in a container: the daemon with the demo workspace.
#
#   docker build -t switchboard .
#   docker run --rm -p 5060:5060/udp -p 5060:5060/tcp \
#       -v switchboard-data:/var/lib/switchboard switchboard
#
# The image's configuration is config/switchboard.toml with the SIP
# listeners on 0.0.0.0:5060 and the data directory (registrations) at
# /var/lib/switchboard; everything else is the demo workspace. In
# particular its trunk allow-list is 127.0.0.1 and ::1, which is never the
# source of a call from outside the container: mount your own file over
#   -v ./my-workspace.toml:/etc/switchboard/switchboard.toml:ro
# (`switchboard check --config FILE` validates one). admin_http stays on
# the container's loopback.

# ---------------------------------------------------------------- builder
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The image's toolchain is the pinned one; without rust-toolchain.toml
# rustup does not try to fetch the components it lists (rustfmt, clippy),
# which a release build does not need.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    rm -f rust-toolchain.toml \
    && cargo build --release --locked -p switchboard \
    && install -D -m 0755 target/release/switchboard /out/switchboard
# The demo configuration, made for a container. Each substitution is
# checked (sed succeeds even when nothing matches), then the whole file.
RUN sed -e 's|^sip_udp = .*|sip_udp = "0.0.0.0:5060"|' \
        -e 's|^sip_tcp = .*|sip_tcp = "0.0.0.0:5060"|' \
        -e 's|^data_dir = .*|data_dir = "/var/lib/switchboard"|' \
        -e 's|^# advertise = .*|advertise = "127.0.0.1"|' \
        -e 's|"\.\./prompts/|"/usr/share/switchboard/prompts/|' \
        config/switchboard.toml >/out/switchboard.toml \
    && install -d /usr/share/switchboard && cp -r prompts /usr/share/switchboard/prompts \
    && grep -q '"/usr/share/switchboard/prompts/' /out/switchboard.toml \
    && grep -q '^sip_udp = "0.0.0.0:5060"$' /out/switchboard.toml \
    && grep -q '^sip_tcp = "0.0.0.0:5060"$' /out/switchboard.toml \
    && grep -q '^data_dir = "/var/lib/switchboard"$' /out/switchboard.toml \
    && grep -q '^advertise = "127.0.0.1"$' /out/switchboard.toml \
    && /out/switchboard check --config /out/switchboard.toml

# ---------------------------------------------------------------- runtime
FROM debian:bookworm-slim
RUN useradd --system --home-dir /var/lib/switchboard --shell /usr/sbin/nologin switchboard \
    && install -d -o switchboard -g switchboard -m 0750 /var/lib/switchboard
COPY --from=builder /out/switchboard /usr/local/bin/switchboard
COPY --from=builder /out/switchboard.toml /etc/switchboard/switchboard.toml
# The demo's prompts (the file names them here).
COPY --from=builder /usr/share/switchboard/prompts /usr/share/switchboard/prompts
USER switchboard
WORKDIR /var/lib/switchboard
VOLUME ["/var/lib/switchboard"]
# Logs go to stderr; no terminal colours in `docker logs`.
ENV NO_COLOR=1
EXPOSE 5060/udp 5060/tcp
# SIGTERM is the graceful stop: registrations are saved to the data
# directory and restored at the next start.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["--config", "/etc/switchboard/switchboard.toml"]
