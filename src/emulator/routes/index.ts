/** Every endpoint the emulator serves: one module per DashScope endpoint. */
import type { EmulatorRoute } from '../route.js';
import { compatChat } from './compat-chat.js';
import { multimodalEmbedding } from './multimodal-embedding.js';
import { multimodalGeneration } from './multimodal-generation.js';
import { TASK_ROUTES } from './tasks.js';
import { compatEmbeddings, nativeTextEmbedding } from './text-embedding.js';
import { getPolicy } from './uploads.js';

export const ROUTES: readonly EmulatorRoute[] = [
  nativeTextEmbedding,
  compatEmbeddings,
  multimodalEmbedding,
  ...TASK_ROUTES,
  getPolicy,
  multimodalGeneration,
  compatChat,
];
