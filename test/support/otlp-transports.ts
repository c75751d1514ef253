/**
 * The two ways an OTLP export reaches the test receiver: an OTLP/HTTP (protobuf) listener and an
 * OTLP/gRPC server, both on 127.0.0.1:0. Each hands the request body to one handler and turns its
 * answer into the protocol's own success or error.
 */
import grpc from '@grpc/grpc-js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { gunzipSync, inflateSync } from 'node:zlib';
import { listenLocal } from './listen.js';
import { EMPTY_RESPONSE, METRICS_SERVICE_EXPORT_PATH } from './otlp-proto.js';

/** The receiver's answer to one export request: success, or an HTTP error status with a message. */
export type ExportAnswer = { ok: true } | { ok: false; status: number; message: string };

/** Takes one export request body (uncompressed) and where it came in. */
export type ExportHandler = (body: Uint8Array, info: { path: string; contentType: string | undefined }) => Promise<ExportAnswer>;

/** A listening transport: its port and how to close it. */
export interface ExportListener {
  readonly port: number;
  readonly close: () => Promise<void>;
}

/** HTTP status → the gRPC status a collector would use for it. */
function grpcStatusFor(httpStatus: number): grpc.status {
  switch (httpStatus) {
    case 400:
      return grpc.status.INVALID_ARGUMENT;
    case 401:
      return grpc.status.UNAUTHENTICATED;
    case 403:
      return grpc.status.PERMISSION_DENIED;
    case 404:
      return grpc.status.UNIMPLEMENTED;
    case 429:
      return grpc.status.RESOURCE_EXHAUSTED;
    case 500:
      return grpc.status.INTERNAL;
    default:
      return grpc.status.UNAVAILABLE;
  }
}

/** MetricsService/Export with raw bodies: the handler decodes them itself. */
const METRICS_SERVICE: grpc.ServiceDefinition = {
  Export: {
    path: METRICS_SERVICE_EXPORT_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

/** An OTLP/gRPC server for MetricsService/Export. */
export async function listenGrpc(handle: ExportHandler): Promise<ExportListener> {
  const server = new grpc.Server();
  server.addService(METRICS_SERVICE, {
    Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const contentType = call.metadata.get('content-type')[0]?.toString();
      handle(call.request, { path: METRICS_SERVICE_EXPORT_PATH, contentType }).then(
        (answer) => {
          if (answer.ok) callback(null, EMPTY_RESPONSE);
          else callback({ code: grpcStatusFor(answer.status), details: answer.message });
        },
        (err: unknown) => callback({ code: grpc.status.INTERNAL, details: String(err) }),
      );
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  const close = () =>
    new Promise<void>((resolve) => {
      server.forceShutdown();
      resolve();
    });
  return { port, close };
}

/** The body of one complete HTTP request, decompressed; answers 400 itself and returns undefined when it cannot be. */
function decodedBody(req: IncomingMessage, res: ServerResponse, chunks: Buffer[]): Buffer | undefined {
  let body: Buffer = Buffer.concat(chunks);
  try {
    const encoding = req.headers['content-encoding'];
    if (encoding === 'gzip') body = gunzipSync(body);
    else if (encoding === 'deflate') body = inflateSync(body);
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`bad body encoding: ${String(err)}\n`);
    return undefined;
  }
  return body;
}

/** An OTLP/HTTP listener taking POSTs at `path`; anything else is answered 404 and reported to `onStray` as "METHOD path". */
export async function listenHttp(path: string, handle: ExportHandler, onStray: (request: string) => void): Promise<ExportListener> {
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const reqPath = (req.url ?? '/').split('?')[0]!;
      if (req.method !== 'POST' || reqPath !== path) {
        onStray(`${req.method} ${reqPath}`);
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      const body = decodedBody(req, res, chunks);
      if (body === undefined) return;
      handle(body, { path: reqPath, contentType: req.headers['content-type'] }).then(
        (answer) => {
          if (res.destroyed) return;
          if (answer.ok) res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': EMPTY_RESPONSE.length }).end(EMPTY_RESPONSE);
          else res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(`${answer.message}\n`);
        },
        (err: unknown) => {
          if (!res.destroyed) res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`);
        },
      );
    });
  });
  const port = await listenLocal(server);
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return { port, close };
}
