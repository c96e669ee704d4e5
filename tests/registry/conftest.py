"""Registry fixtures: Debian's ``docker-registry`` on 127.0.0.1 (skipped when not installed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.registry.dockerregistry import DockerRegistry, registry_binary


@pytest.fixture(scope="session")
def docker_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    """A real CNCF distribution registry: no auth, temporary storage, deletes enabled."""
    if registry_binary() is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    reg = DockerRegistry(tmp_path_factory.mktemp("docker-registry")).start()
    yield reg
    reg.stop()
