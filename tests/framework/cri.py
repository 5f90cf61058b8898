"""A small client of the Kubernetes CRI ``runtime.v1`` API, for tests.

Debian 12 packages no ``crictl``, so the tests drive containerd's CRI plugin
through this: the RuntimeService subset of tests/framework/cri_api (generated
by scripts/gen-proto.sh) over containerd's unix socket. Methods return plain
Python values so tests do not depend on protobuf types; a failed call raises
:class:`CriError` naming the RPC, the gRPC code and containerd's message,
which is what a test failure needs to show.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc

from tests.framework.cri_api import runtime_v1_pb2 as pb
from tests.framework.cri_api import runtime_v1_pb2_grpc as pb_grpc

_Reply = TypeVar("_Reply")


class CriError(RuntimeError):
    """A CRI call failed: ``code`` is the gRPC status name (e.g. ``NOT_FOUND``)."""

    def __init__(self, method: str, code: str, details: str) -> None:
        super().__init__(f"CRI {method} failed: {code}: {details}")
        self.method, self.code, self.details = method, code, details


@dataclass(frozen=True)
class PodStatus:
    """PodSandboxStatus, flattened; ``info`` is the verbose map (JSON strings)."""

    id: str
    state: str  # "SANDBOX_READY" | "SANDBOX_NOTREADY"
    ip: str
    additional_ips: list[str]
    runtime_handler: str
    info: dict[str, str] = field(default_factory=dict)

    def netns_path(self) -> str | None:
        """The pod's network namespace (from the verbose info containerd returns)."""
        raw = self.info.get("info")
        if raw is None:
            return None
        spec = json.loads(raw).get("runtimeSpec") or {}
        for ns in (spec.get("linux") or {}).get("namespaces") or []:
            if ns.get("type") == "network":
                path = ns.get("path")
                return str(path) if path else None
        return None


@dataclass(frozen=True)
class ContainerInfo:
    """ContainerStatus, flattened."""

    id: str
    state: str  # "CONTAINER_CREATED" | "CONTAINER_RUNNING" | "CONTAINER_EXITED" | ...
    exit_code: int
    reason: str
    message: str
    image: str
    log_path: str


@dataclass(frozen=True)
class ExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


class CriClient:
    """RuntimeService over a unix socket; one channel, closed by :meth:`close`."""

    def __init__(self, socket: Path | str, timeout: float = 180) -> None:
        self.timeout = timeout
        self._channel: Any = grpc.insecure_channel(f"unix://{socket}")
        self._stub: Any = pb_grpc.RuntimeServiceStub(self._channel)

    def __enter__(self) -> CriClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request: object, reply: type[_Reply],
              timeout: float | None = None) -> _Reply:
        rpc: Callable[..., Any] = getattr(self._stub, method)
        try:
            response = rpc(request, timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            code = e.code()  # grpc.Call, on a unary call's error
            raise CriError(method, code.name if code else "UNKNOWN", e.details() or "") from None
        assert isinstance(response, reply)
        return response

    def version(self) -> dict[str, str]:
        r = self._call("Version", pb.VersionRequest(version="v1"), pb.VersionResponse)
        return {"version": r.version, "runtime_name": r.runtime_name,
                "runtime_version": r.runtime_version,
                "runtime_api_version": r.runtime_api_version}

    def run_pod_sandbox(self, config: pb.PodSandboxConfig, handler: str = "") -> str:
        request = pb.RunPodSandboxRequest(config=config, runtime_handler=handler)
        return self._call("RunPodSandbox", request, pb.RunPodSandboxResponse).pod_sandbox_id

    def stop_pod_sandbox(self, pod_id: str) -> None:
        self._call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod_id),
                   pb.StopPodSandboxResponse)

    def remove_pod_sandbox(self, pod_id: str) -> None:
        self._call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
                   pb.RemovePodSandboxResponse)

    def pod_sandbox_status(self, pod_id: str, verbose: bool = False) -> PodStatus:
        r = self._call("PodSandboxStatus",
                       pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose),
                       pb.PodSandboxStatusResponse)
        s = r.status
        return PodStatus(id=s.id, state=pb.PodSandboxState.Name(s.state), ip=s.network.ip,
                         additional_ips=[a.ip for a in s.network.additional_ips],
                         runtime_handler=s.runtime_handler, info=dict(r.info))

    def create_container(self, pod_id: str, config: pb.ContainerConfig,
                         sandbox_config: pb.PodSandboxConfig) -> str:
        request = pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config,
                                            sandbox_config=sandbox_config)
        return self._call("CreateContainer", request, pb.CreateContainerResponse).container_id

    def start_container(self, container_id: str) -> None:
        self._call("StartContainer", pb.StartContainerRequest(container_id=container_id),
                   pb.StartContainerResponse)

    def stop_container(self, container_id: str, timeout: int = 10) -> None:
        """``timeout`` is the grace period (seconds) before SIGKILL, as in the CRI."""
        self._call("StopContainer",
                   pb.StopContainerRequest(container_id=container_id, timeout=timeout),
                   pb.StopContainerResponse, timeout=self.timeout + timeout)

    def remove_container(self, container_id: str) -> None:
        self._call("RemoveContainer", pb.RemoveContainerRequest(container_id=container_id),
                   pb.RemoveContainerResponse)

    def container_status(self, container_id: str) -> ContainerInfo:
        r = self._call("ContainerStatus", pb.ContainerStatusRequest(container_id=container_id),
                       pb.ContainerStatusResponse)
        s = r.status
        return ContainerInfo(id=s.id, state=pb.ContainerState.Name(s.state),
                             exit_code=s.exit_code, reason=s.reason, message=s.message,
                             image=s.image.image, log_path=s.log_path)

    def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: int = 60) -> ExecResult:
        """Run ``cmd`` in the container; ``timeout`` (seconds) is the CRI's, 0 = none."""
        request = pb.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=timeout)
        r = self._call("ExecSync", request, pb.ExecSyncResponse,
                       timeout=self.timeout + timeout)
        return ExecResult(stdout=r.stdout, stderr=r.stderr, exit_code=r.exit_code)


def pod_config(name: str, uid: str, *, namespace: str = "default", hostname: str = "",
               log_directory: Path | str = "", cgroup_parent: str | None = None,
               host_network: bool = False,
               labels: Mapping[str, str] | None = None,
               port_mappings: Sequence[tuple[int, int]] = ()) -> pb.PodSandboxConfig:
    """A PodSandboxConfig as the kubelet would send for a plain pod.

    Namespace modes are POD (the pod's own network/pid/ipc namespaces), or NODE
    for the network with ``host_network`` (no CNI then). ``port_mappings`` are
    (container port, host port) pairs over TCP, the pod's ``hostPort``s, which
    containerd hands to CNI's ``portmap``.
    """
    mode = pb.NamespaceMode
    options = pb.NamespaceOption(network=mode.NODE if host_network else mode.POD,
                                 pid=mode.CONTAINER, ipc=mode.POD)
    linux = pb.LinuxPodSandboxConfig(
        security_context=pb.LinuxSandboxSecurityContext(namespace_options=options))
    if cgroup_parent is not None:
        linux.cgroup_parent = cgroup_parent
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=0),
        hostname=hostname or name, log_directory=str(log_directory), linux=linux,
        labels=dict(labels or {}),
        port_mappings=[pb.PortMapping(protocol=pb.Protocol.TCP, container_port=inside,
                                      host_port=outside) for inside, outside in port_mappings])


def container_config(name: str, image: str, *, command: Sequence[str] = (),
                     args: Sequence[str] = (), log_path: str = "",
                     env: Mapping[str, str] | None = None,
                     resources: Mapping[str, int | str] | None = None) -> pb.ContainerConfig:
    """A ContainerConfig; ``log_path`` is relative to the pod's log_directory (CRI's rule).

    ``resources`` takes LinuxContainerResources field names, e.g.
    ``{"memory_limit_in_bytes": 64 << 20, "cpu_shares": 512}``.
    """
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=0), image=pb.ImageSpec(image=image),
        command=list(command), args=list(args), log_path=log_path,
        envs=[pb.KeyValue(key=k, value=v.encode()) for k, v in (env or {}).items()])
    if resources is not None:
        config.linux.resources.CopyFrom(pb.LinuxContainerResources(**resources))  # type: ignore[arg-type]
    return config
