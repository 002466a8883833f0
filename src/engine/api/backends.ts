/** The two things `unicorn serve` can put behind the API: the model loaded in this process, or a resident server's. */
import { complete } from '../generate/complete.js';
import type { Runner } from '../generate/runner.js';
import type { ResidentClient } from '../server/client.js';
import type { ServerInfo } from '../server/protocol.js';
import type { ApiBackend } from './http.js';

export function localBackend(runner: Runner, modelId: string): ApiBackend {
  return {
    modelId, ctx: runner.backend.ctx, defaults: runner.defaults, chat: runner.codec?.chatTemplate != null,
    complete: (req, onText, shouldStop) => complete(runner, req, onText, shouldStop),
    status: () => Promise.resolve({ device: runner.device?.info.name ?? 'cpu', contextUsed: runner.session.contextUsed, gpuBytes: runner.gpuBytes(), resident: false }),
  };
}

/** Requests go to the resident server one at a time (the API's queue), over one connection. */
export function residentBackend(client: ResidentClient, info: ServerInfo, modelId: string): ApiBackend {
  return {
    modelId, ctx: info.ctx, defaults: info.defaults, chat: info.chatTemplate === true,
    complete: (req, onText, shouldStop) => client.complete(req, onText, shouldStop),
    status: async () => {
      const i = await client.info();
      return { device: i.device, contextUsed: i.contextUsed, gpuBytes: i.gpuBytes, resident: true };
    },
  };
}
