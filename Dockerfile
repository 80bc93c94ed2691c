# tilecast's thaw-slump job in a container:
#
#   docker run --rm --gpus all IMAGE --config C --tile-list T [--shard N]
#
# runs `python scripts/inference.py --config C --tile-list T` in /opt/tilecast, as user 10001, with
# /cache as its scratch volume (README, "Container image"). `make image` builds it.
#
# BASE is the runtime: by default PyTorch's CUDA runtime image with the torch release tilecast
# pins (2.13.0, the release that made the shipped torch.export bundles) on CUDA 12.6. Its torch
# is used as it is (the venv sees the base's packages), so no second torch is installed.
# tests/container builds FROM a Debian bookworm minbase instead (python3, python3-venv,
# ca-certificates) with the CPU torch wheel in docker/wheels/.
#
# What a build behind a proxy or offline needs (nothing, for PyPI on an open network):
#   --build-arg PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS, PIP_TRUSTED_HOST  (pip's sources)
#   --build-arg HTTPS_PROXY, HTTP_PROXY, NO_PROXY  (Docker's predefined args, kept out of the image)
#   docker/ca-certificates/*.crt  CAs the build stage trusts (a TLS-intercepting proxy's)
#   docker/wheels/*.whl           local wheels, looked at beside the indexes
#   docker/constraints.txt        version pins for every package installed
# Works with BuildKit and with the legacy builder (no RUN --mount, no heredocs).

ARG BASE=pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime

FROM ${BASE} AS build
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_TRUSTED_HOST
# the extras the job needs: report (matplotlib, for the run's report), serve (the well-log service)
ARG EXTRAS=report,serve
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY docker/ docker/
RUN if ls docker/ca-certificates/*.crt >/dev/null 2>&1; then \
        cp docker/ca-certificates/*.crt /usr/local/share/ca-certificates/ && update-ca-certificates; \
    fi \
 && python3 -m venv --system-site-packages /opt/venv
# the dependencies, from pyproject.toml alone: a change to the code reuses this layer
COPY pyproject.toml ./
RUN python3 docker/requirements.py pyproject.toml "$EXTRAS" > /tmp/requirements.txt \
 && sh docker/pip-install.sh --requirement /tmp/requirements.txt
COPY README.md ./
COPY src/ src/
# tilecast itself; then pip and setuptools leave the venv (no build tools in the image), and so
# do the libraries' own test suites (pandas, numpy, matplotlib, sympy..., torch's C++ tests)
RUN sh docker/pip-install.sh --no-deps . \
 && /opt/venv/bin/python -m pip uninstall --yes pip setuptools wheel \
 && find /opt/venv/lib -depth -type d \( -name tests -o -path "*/site-packages/torch/test" \) \
        -exec rm -rf {} + \
 && /opt/venv/bin/python -c "import tilecast.cli.main, torch, rasterio, pyogrio, matplotlib, fastapi"

FROM ${BASE}
ARG USER_ID=10001
LABEL org.opencontainers.image.title="tilecast" \
      org.opencontainers.image.description="The thaw-slump job: python scripts/inference.py --config C --tile-list T [--shard N]"
# /cache is world-writable (sticky, like /tmp) so that `docker run --user UID` works too
RUN useradd --uid "$USER_ID" --user-group --create-home --shell /usr/sbin/nologin tilecast \
 && mkdir /cache && chmod 1777 /cache
COPY --from=build /opt/venv /opt/venv
WORKDIR /opt/tilecast
COPY configs/ configs/
COPY models/ models/
COPY scripts/inference.py scripts/
# Scratch goes to /cache: temporary files (Python, GDAL), caches (XDG, matplotlib, torch.compile).
# The basemap's block cache is in memory (input.block_cache_mb).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TMPDIR=/cache \
    CPL_TMPDIR=/cache \
    XDG_CACHE_HOME=/cache \
    MPLCONFIGDIR=/cache/matplotlib \
    TORCHINDUCTOR_CACHE_DIR=/cache/torchinductor \
    TRITON_CACHE_DIR=/cache/triton
VOLUME /cache
USER ${USER_ID}
ENTRYPOINT ["python", "scripts/inference.py"]
CMD ["--help"]
