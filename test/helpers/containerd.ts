/**
 * A real containerd (Debian's `containerd` + `runc`) started by a test with
 * its own root, state and socket under a temporary directory, so it never
 * meets a system daemon; an image built locally (busybox from Debian's
 * `busybox-static`, packed as a docker-archive tarball: there is no
 * registry); containers run with `ctr`, and Kubernetes-style pods created
 * through the daemon's CRI plugin over gRPC, as the kubelet does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, rmdirSync, symlinkSync, copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { encodeMap, fields, text, type WriteMessage } from '../../src/processors/enrich/protobuf-wire';
import { GrpcUnixClient } from '../../src/processors/enrich/runtime-api';
import { until } from './e2e';
import { sh } from './netns';

/** Where `busybox-static` puts its binary. */
const BUSYBOX = '/bin/busybox';

export function containerdAvailable(): string | undefined {
  for (const tool of ['containerd', 'ctr', 'runc']) {
    try {
      sh('which', [tool]);
    } catch {
      return `${tool} is not installed (bash deploy/install.sh --test-tools)`;
    }
  }
  return existsSync(BUSYBOX) ? undefined : `${BUSYBOX} is missing (busybox-static)`;
}

/**
 * A docker-archive image (`docker save` shape: manifest.json, config.json,
 * one layer tar) with a static busybox and `sh`, `sleep`, `nc` links; its
 * command sleeps, so it also serves as the pods' sandbox ("pause") image
 * (give that one another command: images differ by their config, and an image
 * with two tags could be named by either).
 */
export function buildBusyboxImage(dir: string, repoTags: readonly string[], cmd: readonly string[] = ['/bin/sleep', '3600']): string {
  const work = path.join(dir, `image-${createHash('sha256').update(repoTags.join(',')).digest('hex').slice(0, 12)}`);
  const rootfs = path.join(work, 'rootfs');
  mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
  copyFileSync(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
  for (const applet of ['sh', 'sleep', 'nc']) symlinkSync('busybox', path.join(rootfs, 'bin', applet));
  const layer = path.join(work, 'layer.tar');
  sh('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', layer, 'bin']);
  const diffId = createHash('sha256').update(readFileSync(layer)).digest('hex');
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/bin'], Cmd: cmd },
    rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
  };
  writeFileSync(path.join(work, 'config.json'), JSON.stringify(config));
  writeFileSync(path.join(work, 'manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: repoTags, Layers: ['layer.tar'] }]));
  const tarball = `${work}.tar`;
  sh('tar', ['-C', work, '-cf', tarball, 'manifest.json', 'config.json', 'layer.tar']);
  return tarball;
}

const CRI = '/runtime.v1.RuntimeService';

export interface PodSpec {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  /** cgroupfs parent of the pod's containers, e.g. `/flowteltest-kubepods/pod<uid>`. */
  readonly cgroupParent: string;
}

export class TestContainerd {
  readonly socket: string;
  private daemon: ChildProcess;
  private readonly configFile: string;
  private readonly log: string[] = [];
  /** Containers started with `ctr run`, by namespace, and pods, to remove at the end. */
  private readonly tasks: Array<{ ns: string; id: string }> = [];
  private readonly pods: string[] = [];
  private readonly cgroupDirs = new Set<string>();
  readonly cri: GrpcUnixClient;

  private constructor(
    readonly dir: string,
    sandboxImage: string,
  ) {
    mkdirSync(dir, { recursive: true });
    this.socket = path.join(dir, 'containerd.sock');
    const config = path.join(dir, 'config.toml');
    writeFileSync(
      config,
      [
        'version = 2',
        `root = "${dir}/root"`,
        `state = "${dir}/state"`,
        '[grpc]',
        `  address = "${this.socket}"`,
        '[ttrpc]',
        `  address = "${this.socket}.ttrpc"`,
        '[debug]',
        '  address = ""',
        '[metrics]',
        '  address = ""',
        '[plugins]',
        '  [plugins."io.containerd.internal.v1.opt"]',
        `    path = "${dir}/opt"`,
        '  [plugins."io.containerd.grpc.v1.cri"]',
        `    sandbox_image = "${sandboxImage}"`,
        // Not below the test's own OOM score (lowering it needs CAP_SYS_RESOURCE, which a CI container may lack).
        '    restrict_oom_score_adj = true',
        '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
        '    runtime_type = "io.containerd.runc.v2"',
        '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
        `    Root = "${dir}/runc"`,
        '',
      ].join('\n'),
    );
    this.configFile = config;
    this.daemon = this.spawnDaemon();
    this.cri = new GrpcUnixClient(this.socket, 20_000);
  }

  private spawnDaemon(): ChildProcess {
    const daemon = spawn('containerd', ['--config', this.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const s of [daemon.stdout!, daemon.stderr!]) s.on('data', (d: Buffer) => this.log.push(d.toString()));
    return daemon;
  }

  private async answering(): Promise<void> {
    await until('containerd answers', () => {
      try {
        this.ctr('default', ['version']);
        return true;
      } catch {
        return false;
      }
    }, 20_000, () => this.output());
  }

  /** Stop the daemon (its containers keep running under their shims) and start it again on the same state. */
  async restart(): Promise<void> {
    this.daemon.kill('SIGTERM');
    if (this.daemon.exitCode === null && this.daemon.signalCode === null) await once(this.daemon, 'exit');
    this.daemon = this.spawnDaemon();
    await this.answering();
  }

  /** Starts a containerd under `dir` and waits until its API answers. */
  static async start(dir: string, sandboxImage: string): Promise<TestContainerd> {
    const c = new TestContainerd(dir, sandboxImage);
    await c.answering();
    return c;
  }

  /** SIGSTOP / SIGCONT the daemon: a runtime that hangs (calls time out) and comes back. */
  freeze(frozen: boolean): void {
    this.daemon.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
  }

  output(): string {
    return this.log.join('').slice(-4000);
  }

  ctr(ns: string, args: readonly string[]): string {
    return sh('ctr', ['--address', this.socket, '-n', ns, ...args]);
  }

  importImage(ns: string, tarball: string): void {
    this.ctr(ns, ['images', 'import', tarball]);
  }

  /** `ctr run -d` a container (host network, cgroup `/<cgroupParent>/<id>`; the image's command unless `command`); its main pid. */
  runContainer(ns: string, id: string, image: string, labels: Readonly<Record<string, string>>, cgroupParent: string, command: readonly string[] = []): number {
    const labelArgs = Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    const cgroup = `${cgroupParent}/${id}`;
    this.cgroupDirs.add(cgroupParent);
    this.ctr(ns, ['run', '-d', '--net-host', '--runc-root', path.join(this.dir, 'runc'), '--cgroup', cgroup, ...labelArgs, image, id, ...command]);
    this.tasks.push({ ns, id });
    return this.taskPid(ns, id);
  }

  /** Kill a `ctr run` container's task and delete the container. */
  async removeContainer(ns: string, id: string): Promise<void> {
    try {
      this.ctr(ns, ['tasks', 'kill', '-s', 'SIGKILL', id]);
    } catch {
      /* already gone */
    }
    await until(`task ${id} stopped`, () => {
      try {
        this.ctr(ns, ['tasks', 'delete', id]);
        return true;
      } catch (e) {
        return /not found/.test(String(e));
      }
    }, 10_000).catch(() => undefined);
    try {
      this.ctr(ns, ['containers', 'delete', id]);
    } catch {
      /* already gone */
    }
    const i = this.tasks.findIndex((t) => t.ns === ns && t.id === id);
    if (i >= 0) this.tasks.splice(i, 1);
  }

  taskPid(ns: string, id: string): number {
    const line = this.ctr(ns, ['tasks', 'ls'])
      .split('\n')
      .find((l) => l.split(/\s+/)[0] === id);
    const pid = Number(line?.split(/\s+/)[1]);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no task ${id} in ${ns}: ${line}`);
    return pid;
  }

  // -------------------------------------------------------------------------
  // CRI, as the kubelet calls it (host network: no CNI needed)

  private sandboxConfig(pod: PodSpec): WriteMessage {
    const nodeNamespaces: WriteMessage = [[1, 2]]; // NamespaceOption.network = NODE
    return [
      [1, [[1, pod.name], [2, pod.uid], [3, pod.namespace], [4, 0]]],
      ...encodeMap(6, { 'io.kubernetes.pod.name': pod.name, 'io.kubernetes.pod.namespace': pod.namespace, 'io.kubernetes.pod.uid': pod.uid }),
      [8, [[1, pod.cgroupParent], [2, [[1, nodeNamespaces]]]]],
    ];
  }

  /** The image id (`sha256:<config digest>`) the CRI knows an image reference by (ImageService/ImageStatus). */
  async imageId(ref: string): Promise<string> {
    const answer = await this.cri.call('/runtime.v1.ImageService/ImageStatus', [[1, [[1, ref]]]]);
    for (const f of fields(answer)) if (f.field === 1 && f.wireType === 2) return single(f.value);
    throw new Error(`the CRI does not know the image ${ref}`);
  }

  /** RunPodSandbox + CreateContainer + StartContainer: the container id. `image` as the kubelet gives it (an image id). */
  async runPod(pod: PodSpec, container: { name: string; image: string; command: readonly string[] }): Promise<string> {
    this.cgroupDirs.add(pod.cgroupParent);
    const sandbox = this.sandboxConfig(pod);
    const podId = single(await this.cri.call(`${CRI}/RunPodSandbox`, [[1, sandbox]]).catch((e: Error) => Promise.reject(new Error(`${e.message}\ncontainerd: ${this.output()}`))));
    this.pods.push(podId);
    const config: WriteMessage = [
      [1, [[1, container.name], [2, 0]]],
      [2, [[1, container.image]]],
      ...container.command.map((c): [number, string] => [3, c]),
      ...encodeMap(9, { 'io.kubernetes.container.name': container.name, 'io.kubernetes.pod.name': pod.name, 'io.kubernetes.pod.namespace': pod.namespace, 'io.kubernetes.pod.uid': pod.uid }),
      [15, [[2, [[3, [[1, 2]]]]]]], // linux.security_context.namespace_options.network = NODE
    ];
    const id = single(await this.cri.call(`${CRI}/CreateContainer`, [[1, podId], [2, config], [3, sandbox]]));
    await this.cri.call(`${CRI}/StartContainer`, [[1, id]]);
    return id;
  }

  /** The pid of a CRI container (ContainerStatus verbose info). */
  async criPid(id: string): Promise<number> {
    const answer = await this.cri.call(`${CRI}/ContainerStatus`, [[1, id], [2, true]]);
    for (const f of fields(answer)) {
      if (f.field !== 2 || f.wireType !== 2) continue; // ContainerStatusResponse.info map
      for (const g of fields(f.value)) {
        if (g.field === 2 && g.wireType === 2) {
          const info = JSON.parse(text(g.value)) as { pid?: number };
          if (info.pid) return info.pid;
        }
      }
    }
    throw new Error(`no pid in the status of ${id}`);
  }

  /** Removes every container and pod, stops the daemon, removes the cgroups it made. */
  async stop(): Promise<void> {
    for (const podId of this.pods) {
      await this.cri.call(`${CRI}/StopPodSandbox`, [[1, podId]]).catch(() => undefined);
      await this.cri.call(`${CRI}/RemovePodSandbox`, [[1, podId]]).catch(() => undefined);
    }
    this.cri.close();
    for (const { ns, id } of [...this.tasks]) await this.removeContainer(ns, id);
    if (this.daemon.exitCode === null && this.daemon.signalCode === null) {
      this.daemon.kill('SIGCONT');
      this.daemon.kill('SIGTERM');
      await once(this.daemon, 'exit');
    }
    for (const parent of this.cgroupDirs) removeCgroupTree(parent);
  }
}

function single(answer: Uint8Array): string {
  for (const f of fields(answer)) if (f.field === 1 && f.wireType === 2) return text(f.value);
  throw new Error('empty answer');
}

/** rmdir a test cgroup (`/flowteltest-…/pod…`) and its empty parents in every hierarchy mounted at /sys/fs/cgroup. */
function removeCgroupTree(cgroupPath: string): void {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup2' || f[2] === 'cgroup')
    .map((f) => f[1]!);
  for (const mount of mounts) {
    let p = cgroupPath;
    while (p !== '/' && p !== '') {
      try {
        rmdirSync(path.join(mount, p));
      } catch {
        /* not there or not empty */
      }
      p = path.dirname(p);
    }
  }
}
