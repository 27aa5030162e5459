/** Every endpoint the emulator serves: one module per DashScope endpoint. */
import type { EmulatorRoute } from '../route.js';
import { compatEmbeddings, nativeTextEmbedding } from './text-embedding.js';

export const ROUTES: readonly EmulatorRoute[] = [nativeTextEmbedding, compatEmbeddings];
