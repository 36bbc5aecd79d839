/**
 * The container a process runs in, from the text of /proc/PID/cgroup.
 *
 * Each line is `hierarchy-id:controllers:path` — `0::/path` for the cgroup v2
 * (unified) hierarchy, `N:memory:/path` or `N:name=systemd:/path` for v1
 * hierarchies. Container runtimes name the cgroup of a container after its
 * id, in one of these shapes (the id is 64 hex digits):
 *
 * | runtime | cgroup driver | path (last segments) |
 * |---|---|---|
 * | docker | systemd | `/system.slice/docker-<id>.scope` |
 * | docker | cgroupfs | `/docker/<id>` |
 * | containerd (Kubernetes) | systemd | `/kubepods.slice/…/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope` |
 * | containerd (Kubernetes) | cgroupfs | `/kubepods/burstable/pod<uid>/<id>` |
 * | containerd (systemd path in the cgroupfs form, k3s and others) | | `…/kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>` |
 * | nerdctl | systemd | `/system.slice/nerdctl-<id>.scope` |
 * | CRI-O | systemd | `/kubepods.slice/…/crio-<id>.scope` (its monitor: `crio-conmon-<id>.scope`, not the container) |
 * | podman | systemd | `/machine.slice/libpod-<id>.scope[/container]`, rootless `/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-<id>.scope` (monitor: `libpod-conmon-<id>.scope`) |
 * | podman | cgroupfs | `/libpod_parent/libpod-<id>` |
 * | ECS, others | cgroupfs | `/ecs/<task>/<id>` (any segment that is exactly 64 hex digits) |
 *
 * The v2 line is read first, then the v1 lines in order; the first line with
 * an id wins. Within a path the innermost id wins: a Kubernetes node that is
 * itself a container (kind: `/docker/<node>/kubepods/…/<pod-container>`) gives
 * the pod's container, which is what Kubernetes knows it by.
 */

export type ContainerRuntimeName = 'docker' | 'containerd' | 'cri-o' | 'podman';

export interface CgroupContainer {
  /** 64 lower-case hex digits. */
  readonly id: string;
  /** The runtime the path's shape names, when it names one (a bare id does not). */
  readonly runtime?: ContainerRuntimeName;
  /** The Kubernetes pod uid of a `kubepods` path (dashes restored). */
  readonly podUid?: string;
}

const ID = '[0-9a-f]{64}';
/** `<prefix>-<id>.scope` (systemd driver) or `<prefix>-<id>` (podman cgroupfs). */
const SCOPE = new RegExp(`^(docker|cri-containerd|crio|libpod|nerdctl)-(${ID})(?:\\.scope)?$`);
/** `<slice>:<prefix>:<id>`: the systemd cgroup name some setups write as a cgroupfs path. */
const COLON_FORM = new RegExp(`:(docker|cri-containerd|crio|libpod|containerd):(${ID})$`);
const BARE = new RegExp(`^${ID}$`);
const POD = /(?:^|-)pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?(?::|$)/;

const RUNTIME_OF: Readonly<Record<string, ContainerRuntimeName>> = {
  docker: 'docker',
  'cri-containerd': 'containerd',
  containerd: 'containerd',
  nerdctl: 'containerd',
  crio: 'cri-o',
  libpod: 'podman',
};

/** The container of one cgroup path (`/system.slice/docker-<id>.scope`), or undefined. */
export function containerFromCgroupPath(path: string): CgroupContainer | undefined {
  const segments = path.split('/');
  let podUid: string | undefined;
  for (const s of segments) {
    const pod = POD.exec(s);
    if (pod) podUid = pod[1]!.replace(/_/g, '-');
  }
  for (let i = segments.length - 1; i >= 0; i--) {
    const s = segments[i]!;
    if (s === '') continue;
    let m = SCOPE.exec(s) ?? COLON_FORM.exec(s);
    if (m) return withPod({ id: m[2]!, runtime: RUNTIME_OF[m[1]!] }, podUid);
    m = BARE.exec(s);
    if (m) {
      // cgroupfs shapes: the parent directory names the runtime.
      const parent = segments[i - 1] ?? '';
      const runtime: ContainerRuntimeName | undefined = parent === 'docker' ? 'docker' : undefined;
      return withPod(runtime ? { id: s, runtime } : { id: s }, podUid);
    }
  }
  return undefined;
}

function withPod(c: { id: string; runtime?: ContainerRuntimeName }, podUid: string | undefined): CgroupContainer {
  return podUid ? { ...c, podUid } : c;
}

/** The container of a process, from the whole text of its /proc/PID/cgroup. */
export function containerFromCgroupFile(text: string): CgroupContainer | undefined {
  const v2: string[] = [];
  const v1: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const path = line.slice(second + 1);
    (line.slice(0, second) === '0:' ? v2 : v1).push(path);
  }
  for (const path of [...v2, ...v1]) {
    const c = containerFromCgroupPath(path);
    if (c) return c;
  }
  return undefined;
}
