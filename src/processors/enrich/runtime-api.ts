/**
 * The container lists of containerd and of CRI runtimes (containerd's cri
 * plugin, CRI-O), over their gRPC unix sockets with @grpc/grpc-js, for the
 * `container` processor. The requests are empty; the answers are read with the
 * small decoder of protobuf-wire.ts, field numbers as in these .proto
 * excerpts (unknown fields skipped):
 *
 * ```proto
 * // containerd api/services/namespaces/v1/namespace.proto
 * service Namespaces { rpc List(ListNamespacesRequest) returns (ListNamespacesResponse); }
 * message ListNamespacesResponse { repeated Namespace namespaces = 1; }
 * message Namespace { string name = 1; map<string, string> labels = 2; }
 *
 * // containerd api/services/events/v1/events.proto (every namespace)
 * service Events { rpc Subscribe(SubscribeRequest) returns (stream Envelope); }
 * message SubscribeRequest { repeated string filters = 1; }
 * message Envelope { Timestamp timestamp = 1; string namespace = 2; string topic = 3; Any event = 4; }
 *
 * // containerd api/services/containers/v1/containers.proto
 * // (the namespace is the `containerd-namespace` request header)
 * service Containers { rpc List(ListContainersRequest) returns (ListContainersResponse); }
 * message ListContainersResponse { repeated Container containers = 1; }
 * message Container { string id = 1; map<string, string> labels = 2; string image = 3; … }
 *
 * // kubernetes cri-api pkg/apis/runtime/v1/api.proto (v1alpha2: the same numbers)
 * service RuntimeService { rpc ListContainers(ListContainersRequest) returns (ListContainersResponse); }
 * message ListContainersResponse { repeated Container containers = 1; }
 * message Container { string id = 1; string pod_sandbox_id = 2; ContainerMetadata metadata = 3;
 *                     ImageSpec image = 4; string image_ref = 5; …; map<string, string> labels = 8; … }
 * message ContainerMetadata { string name = 1; uint32 attempt = 2; }
 * message ImageSpec { string image = 1; …; string user_specified_image = 18; }
 * service ImageService { rpc ListImages(ListImagesRequest) returns (ListImagesResponse); }
 * message ListImagesResponse { repeated Image images = 1; }
 * message Image { string id = 1; repeated string repo_tags = 2; repeated string repo_digests = 3; … }
 * ```
 */
import { stat } from 'node:fs/promises';
import { Client, credentials, Metadata, status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import type { ContainerSummary } from './docker-api';
import { parseImageReference } from './docker-api';
import { encode, fields, mapEntry, text, type WriteMessage } from './protobuf-wire';

/** A container runtime's gRPC socket. */
export class GrpcUnixClient {
  private client?: Client;

  constructor(
    readonly socketPath: string,
    private readonly timeoutMs: number,
  ) {}

  /**
   * One unary call; the answer's bytes. A socket that does not exist fails
   * with an ENOENT error (without creating a channel), so a runtime that is
   * not installed costs nothing.
   */
  async call(method: string, request: WriteMessage = [], headers: Readonly<Record<string, string>> = {}): Promise<Buffer> {
    const client = await this.connect();
    const metadata = new Metadata();
    for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest<WriteMessage, Buffer>(
        method,
        encode,
        (b) => b,
        request,
        metadata,
        { deadline: Date.now() + this.timeoutMs },
        (error, answer) => (error ? reject(error) : resolve(answer ?? Buffer.alloc(0))),
      );
    });
  }

  private async connect(): Promise<Client> {
    if (!this.client) {
      await stat(this.socketPath); // ENOENT: no runtime here
      this.client = new Client(`unix://${this.socketPath}`, credentials.createInsecure(), {
        // Lists of many containers with their specs (containerd) are big.
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
        // A restarted runtime is found again within a refresh or two.
        'grpc.initial_reconnect_backoff_ms': 500,
        'grpc.max_reconnect_backoff_ms': 5000,
      });
    }
    return this.client;
  }

  /**
   * A server-streaming call: `onMessage` for each message; `onEnd` once, when
   * the stream ends or fails (not after `cancel()` of the returned call).
   */
  async stream(method: string, request: WriteMessage, onMessage: (message: Buffer) => void, onEnd: (error?: Error) => void): Promise<ClientReadableStream<Buffer>> {
    const client = await this.connect();
    const call = client.makeServerStreamRequest<WriteMessage, Buffer>(method, encode, (b) => b, request, new Metadata());
    let ended = false;
    const end = (error?: Error): void => {
      if (ended) return;
      ended = true;
      if (isGrpcError(error, status.CANCELLED)) return;
      onEnd(error);
    };
    call.on('data', (m: Buffer) => onMessage(m));
    call.on('error', (e: Error) => end(e));
    call.on('end', () => end());
    return call;
  }

  close(): void {
    this.client?.close();
    this.client = undefined;
  }
}

export function isGrpcError(error: unknown, code: status): error is ServiceError {
  return typeof error === 'object' && error !== null && (error as Partial<ServiceError>).code === code && 'details' in error;
}

/** A runtime that is installed but not running (socket left behind): not worth a warning. */
export function isRuntimeAbsent(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ECONNREFUSED') return true;
  return isGrpcError(error, status.UNAVAILABLE) && /ECONNREFUSED|ENOENT/.test(error.details);
}

/** A container of a gRPC runtime: `name` only when the runtime knows one (not the id). */
export type RuntimeContainer = ContainerSummary;

// ---------------------------------------------------------------------------
// containerd

/** Label of the container name, in order: the kubelet's (CRI) and nerdctl's. */
export const CONTAINERD_NAME_LABELS = ['io.kubernetes.container.name', 'nerdctl/name'] as const;

/** `ListNamespacesResponse` → namespace names. */
export function decodeNamespaces(buf: Uint8Array): string[] {
  const out: string[] = [];
  for (const f of fields(buf)) {
    if (f.field !== 1 || f.wireType !== 2) continue;
    for (const g of fields(f.value)) if (g.field === 1 && g.wireType === 2) out.push(text(g.value));
  }
  return out;
}

/** containerd's `ListContainersResponse` → containers (name from the labels, image as stored). */
export function decodeContainerdContainers(buf: Uint8Array): RuntimeContainer[] {
  const out: RuntimeContainer[] = [];
  for (const f of fields(buf)) {
    if (f.field !== 1 || f.wireType !== 2) continue;
    let id = '';
    let image = '';
    const labels = new Map<string, string>();
    for (const g of fields(f.value)) {
      if (g.wireType !== 2) continue;
      if (g.field === 1) id = text(g.value);
      else if (g.field === 2) labels.set(...mapEntry(g.value));
      else if (g.field === 3) image = text(g.value);
    }
    if (id === '') continue;
    const name = CONTAINERD_NAME_LABELS.map((l) => labels.get(l)).find((v) => v !== undefined && v !== '');
    out.push({ id: id.toLowerCase(), ...(name ? { name } : {}), ...(image ? { image } : {}) });
  }
  return out;
}

const NAMESPACES_LIST = '/containerd.services.namespaces.v1.Namespaces/List';
const CONTAINERS_LIST = '/containerd.services.containers.v1.Containers/List';

/** Every container of every namespace of a containerd (`default`, `k8s.io`, `moby`, …). */
export async function listContainerd(client: GrpcUnixClient): Promise<RuntimeContainer[]> {
  const namespaces = decodeNamespaces(await client.call(NAMESPACES_LIST));
  const lists = await Promise.all(namespaces.map(async (ns) => decodeContainerdContainers(await client.call(CONTAINERS_LIST, [], { 'containerd-namespace': ns }))));
  return lists.flat();
}

const EVENTS_SUBSCRIBE = '/containerd.services.events.v1.Events/Subscribe';
/** The events that change a container list (filters are or-ed). */
export const CONTAINER_EVENT_FILTERS = ['topic=="/containers/create"', 'topic=="/containers/update"', 'topic=="/containers/delete"'] as const;

/** The topic of an `Envelope` (`/containers/create`). */
export function decodeEnvelopeTopic(buf: Uint8Array): string {
  for (const f of fields(buf)) if (f.field === 3 && f.wireType === 2) return text(f.value);
  return '';
}

/**
 * containerd's container events, all namespaces: `onChange(topic)` when a
 * container is created, updated or deleted; `onEnd` when the stream ends or
 * fails. `cancel()` ends it quietly.
 */
export async function watchContainerd(client: GrpcUnixClient, onChange: (topic: string) => void, onEnd: (error?: Error) => void): Promise<{ cancel(): void }> {
  const call = await client.stream(
    EVENTS_SUBSCRIBE,
    CONTAINER_EVENT_FILTERS.map((f): [number, string] => [1, f]),
    (m) => onChange(decodeEnvelopeTopic(m)),
    onEnd,
  );
  return { cancel: () => call.cancel() };
}

// ---------------------------------------------------------------------------
// CRI

function decodeCriImage(buf: Uint8Array): { image?: string; userSpecified?: string } {
  const out: { image?: string; userSpecified?: string } = {};
  for (const f of fields(buf)) {
    if (f.wireType !== 2) continue;
    if (f.field === 1) out.image = text(f.value);
    else if (f.field === 18) out.userSpecified = text(f.value);
  }
  return out;
}

/** A CRI container as listed: its image as references (names or image ids). */
export interface CriContainer {
  readonly id: string;
  readonly name?: string;
  /** In order of preference: `user_specified_image` (kubelet ≥ 1.30), the image spec, `image_ref`. */
  readonly images: readonly string[];
}

/** The CRI's `ListContainersResponse` → containers; the name is the container's metadata name (the name in the pod spec). */
export function decodeCriContainers(buf: Uint8Array): CriContainer[] {
  const out: CriContainer[] = [];
  for (const f of fields(buf)) {
    if (f.field !== 1 || f.wireType !== 2) continue;
    let id = '';
    let name = '';
    let imageRef = '';
    let spec: { image?: string; userSpecified?: string } = {};
    for (const g of fields(f.value)) {
      if (g.wireType !== 2) continue;
      if (g.field === 1) id = text(g.value);
      else if (g.field === 3) {
        for (const h of fields(g.value)) if (h.field === 1 && h.wireType === 2) name = text(h.value);
      } else if (g.field === 4) spec = decodeCriImage(g.value);
      else if (g.field === 5) imageRef = text(g.value);
    }
    if (id === '') continue;
    const images = [spec.userSpecified, spec.image, imageRef].filter((r): r is string => r !== undefined && r !== '');
    out.push({ id: id.toLowerCase(), ...(name ? { name } : {}), images });
  }
  return out;
}

/** The CRI's `ListImagesResponse` → image id → its first tag, else its first digest reference. */
export function decodeCriImages(buf: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of fields(buf)) {
    if (f.field !== 1 || f.wireType !== 2) continue;
    let id = '';
    const tags: string[] = [];
    const digests: string[] = [];
    for (const g of fields(f.value)) {
      if (g.wireType !== 2) continue;
      if (g.field === 1) id = text(g.value);
      else if (g.field === 2) tags.push(text(g.value));
      else if (g.field === 3) digests.push(text(g.value));
    }
    const ref = tags[0] ?? digests[0];
    if (id !== '' && ref !== undefined) out.set(id, ref);
  }
  return out;
}

/**
 * The image reference of a CRI container: the first of its references that
 * is a name; when all are image ids (the kubelet creates containers by image
 * id, and containerd's cri reports that id), the tag of that image.
 */
export function criImageName(c: CriContainer, images: ReadonlyMap<string, string>): string | undefined {
  const named = c.images.find((r) => parseImageReference(r).name !== undefined);
  if (named) return named;
  for (const r of c.images) {
    const ref = images.get(r) ?? images.get(`sha256:${r}`);
    if (ref) return ref;
  }
  return undefined;
}

/** The CRI versions, newest first: a runtime that does not serve v1 is asked v1alpha2 (containerd < 1.5 and others). */
const CRI_SERVICES = ['runtime.v1', 'runtime.v1alpha2'] as const;

/**
 * A CRI runtime's containers (RuntimeService/ListContainers, no filter) with
 * their image names (ImageService/ListImages, only when a container's image
 * is known by id alone).
 */
export class CriLister {
  private service: (typeof CRI_SERVICES)[number] = CRI_SERVICES[0];

  constructor(readonly client: GrpcUnixClient) {}

  async list(): Promise<RuntimeContainer[]> {
    const containers = decodeCriContainers(await this.call('RuntimeService/ListContainers'));
    const needImages = containers.some((c) => c.images.length > 0 && !c.images.some((r) => parseImageReference(r).name !== undefined));
    const images = needImages ? decodeCriImages(await this.call('ImageService/ListImages')) : new Map<string, string>();
    return containers.map((c) => {
      const image = criImageName(c, images);
      return { id: c.id, ...(c.name ? { name: c.name } : {}), ...(image ? { image } : {}) };
    });
  }

  /** `RuntimeService/ListContainers` → `/runtime.v1.RuntimeService/ListContainers`, or v1alpha2 where v1 is not served. */
  private async call(method: `${'RuntimeService' | 'ImageService'}/${string}`): Promise<Buffer> {
    try {
      return await this.client.call(`/${this.service}.${method}`);
    } catch (error) {
      const older = CRI_SERVICES[CRI_SERVICES.indexOf(this.service) + 1];
      if (!older || !isGrpcError(error, status.UNIMPLEMENTED)) throw error;
      this.service = older;
      return this.call(method);
    }
  }
}
