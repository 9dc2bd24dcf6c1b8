# Hermes API and worker image. Build: docker build -t hermes .
# Stage 1 builds the Rust core into a wheel and the WASM adapters with the pinned Zig.
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python3 -m venv /opt/build && /opt/build/bin/pip install --no-cache-dir "maturin>=1.7,<2" "ziglang==0.17.1"
COPY . .
RUN /opt/build/bin/python adapters_wasm/build.py \
 && /opt/build/bin/maturin build --release --out /wheels

# Stage 2: the runtime, with no compiler.
FROM python:3.11-slim-bookworm
RUN useradd --system --create-home hermes
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER hermes
WORKDIR /home/hermes
ENV HERMES_API_HOST=0.0.0.0 HERMES_API_PORT=8080
EXPOSE 8080
ENTRYPOINT ["hermes"]
CMD ["api"]
