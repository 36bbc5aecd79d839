import type { ReceiverFactory } from '../../pipeline/component';
import { ebpfTcpOptions, validateEbpfTcpConfig, type EbpfTcpConfig } from './config';
import { EbpfTcpReceiver } from './receiver';

export const ebpfTcpReceiverFactory: ReceiverFactory<EbpfTcpConfig> = {
  kind: 'receiver',
  type: 'ebpf_tcp',
  stability: 'alpha',
  signals: ['metrics', 'logs'],
  options: ebpfTcpOptions,
  defaultConfig: () => validateEbpfTcpConfig(undefined, ''),
  validate: validateEbpfTcpConfig,
  create: (config, ctx) => new EbpfTcpReceiver(ctx.id, config, ctx.next, ctx.logger, ctx.filter, ctx.logs, ctx.domains),
};
