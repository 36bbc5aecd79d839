import type { ReceiverFactory } from '../../pipeline/component';
import { ebpfDnsOptions, validateEbpfDnsConfig, type EbpfDnsConfig } from './config';
import { EbpfDnsReceiver } from './receiver';

export const ebpfDnsReceiverFactory: ReceiverFactory<EbpfDnsConfig> = {
  kind: 'receiver',
  type: 'ebpf_dns',
  stability: 'development',
  signals: ['metrics', 'logs'],
  options: ebpfDnsOptions,
  defaultConfig: () => validateEbpfDnsConfig(undefined, ''),
  validate: validateEbpfDnsConfig,
  create: (config, ctx) => new EbpfDnsReceiver(ctx.id, config, ctx.next, ctx.logger, ctx.logs, ctx.domains),
};
