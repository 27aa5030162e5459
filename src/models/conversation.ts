/**
 * Qwen-VL conversation models: image (and, for the newer ones, video) + text in, text out.
 * Served natively on `/api/v1/services/aigc/multimodal-generation/generation` and, for OpenAI chat clients, through
 * DashScope's compatible mode (`/compatible-mode/v1/chat/completions`). The gateway does not generate anything
 * itself, so a row only says what the model accepts; DashScope has the last word on everything else
 * (docs/dashscope-contract.md §2.4: unknown parameters are passed on).
 */

export type ConversationModality = 'image' | 'video' | 'audio';

export interface ConversationModel {
  kind: 'conversation';
  name: string;
  /** Media kinds a message part may carry besides text (documentation; the upstream enforces them). */
  modalities: readonly ConversationModality[];
}

const row = (name: string, modalities: readonly ConversationModality[]): ConversationModel => ({
  kind: 'conversation',
  name,
  modalities,
});

const IMAGE = ['image'] as const;
const IMAGE_VIDEO = ['image', 'video'] as const;

export const CONVERSATION_MODELS: readonly ConversationModel[] = [
  // The original Qwen-VL-Chat (seed quick start: dashscope.MultiModalConversation.Models.qwen_vl_chat_v1).
  row('qwen-vl-chat-v1', IMAGE),
  row('qwen-vl-plus', IMAGE_VIDEO),
  row('qwen-vl-max', IMAGE_VIDEO),
  row('qwen-vl-plus-latest', IMAGE_VIDEO),
  row('qwen-vl-max-latest', IMAGE_VIDEO),
  row('qwen2.5-vl-72b-instruct', IMAGE_VIDEO),
  row('qwen2.5-vl-32b-instruct', IMAGE_VIDEO),
  row('qwen2.5-vl-7b-instruct', IMAGE_VIDEO),
  row('qwen2.5-vl-3b-instruct', IMAGE_VIDEO),
  row('qwen3-vl-plus', IMAGE_VIDEO),
  row('qwen3-vl-flash', IMAGE_VIDEO),
];
