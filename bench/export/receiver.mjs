// A local OTLP/gRPC metrics receiver for bench/export (run as a child
// process, so its decoding does not count in the exporter's CPU): a
// @grpc/grpc-js server with the default maximum message size (4 MiB, as the
// OpenTelemetry Collector's otlp receiver), counting each request's bytes and
// data points, reported to the parent over IPC.
import { createRequire } from 'node:module';
import { join } from 'node:path';

const root = process.env.FLOWTEL_ROOT;
const require = createRequire(join(root, 'package.json'));
const { Server, ServerCredentials } = require('@grpc/grpc-js');
const { decodeExportMetricsServiceRequest } = require(join(root, 'dist/test/helpers/otlp-proto.js'));

const identity = (b) => b;
const server = new Server();
let requests = 0;
let bytes = 0;
let points = 0;
server.addService(
  {
    Export: {
      path: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  },
  {
    Export(call, callback) {
      const req = decodeExportMetricsServiceRequest(call.request);
      let n = 0;
      for (const rm of req.resourceMetrics) for (const sm of rm.scopeMetrics) for (const m of sm.metrics) n += "dataPoints" in m.data ? m.data.dataPoints.length : 0;
      requests++;
      bytes += call.request.length;
      points += n;
      process.send({ requests, bytes, points, largest: call.request.length });
      callback(null, Buffer.alloc(0));
    },
  },
);
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.send({ port });
});
process.on('disconnect', () => server.forceShutdown());
