// The Gemini API's JSON shapes (generativelanguage.googleapis.com, v1beta), as far as the gateway
// reads or writes them. Field names are Google's (camelCase JSON of the protobuf messages).

export interface GeminiBlob {
  mimeType: string;
  /** Base64. */
  data: string;
}

export interface GeminiFileData {
  mimeType?: string;
  fileUri: string;
}

export interface GeminiFunctionCall {
  /** Set by some models; echoed on the matching functionResponse when present. */
  id?: string;
  name: string;
  args?: Record<string, unknown>;
}

export interface GeminiFunctionResponse {
  id?: string;
  name: string;
  response: Record<string, unknown>;
}

export interface GeminiPart {
  text?: string;
  /** The part is a thought summary, not answer text. */
  thought?: boolean;
  /** An opaque token the model needs back, on the same part, in the next turn. */
  thoughtSignature?: string;
  inlineData?: GeminiBlob;
  fileData?: GeminiFileData;
  functionCall?: GeminiFunctionCall;
  functionResponse?: GeminiFunctionResponse;
}

export interface GeminiContent {
  role?: 'user' | 'model';
  parts: GeminiPart[];
}

/** Gemini's OpenAPI-subset schema (function parameters, responseSchema). */
export type GeminiSchema = Record<string, unknown>;

export interface GeminiFunctionDeclaration {
  name: string;
  description?: string;
  parameters?: GeminiSchema;
}

export interface GeminiTool {
  functionDeclarations: GeminiFunctionDeclaration[];
}

export type GeminiFunctionCallingMode = 'AUTO' | 'ANY' | 'NONE';

export interface GeminiToolConfig {
  functionCallingConfig: { mode: GeminiFunctionCallingMode; allowedFunctionNames?: string[] };
}

export interface GeminiThinkingConfig {
  thinkingBudget?: number;
  includeThoughts?: boolean;
}

export interface GeminiGenerationConfig {
  maxOutputTokens?: number;
  temperature?: number;
  topP?: number;
  stopSequences?: string[];
  seed?: number;
  candidateCount?: number;
  responseMimeType?: string;
  responseSchema?: GeminiSchema;
  thinkingConfig?: GeminiThinkingConfig;
}

export interface GeminiRequest {
  contents: GeminiContent[];
  systemInstruction?: GeminiContent;
  tools?: GeminiTool[];
  toolConfig?: GeminiToolConfig;
  generationConfig?: GeminiGenerationConfig;
}

export interface GeminiUsageMetadata {
  promptTokenCount?: number;
  /** Part of promptTokenCount. */
  cachedContentTokenCount?: number;
  candidatesTokenCount?: number;
  /** Not part of candidatesTokenCount. */
  thoughtsTokenCount?: number;
  /** Not part of promptTokenCount. */
  toolUsePromptTokenCount?: number;
  totalTokenCount?: number;
  [k: string]: unknown;
}

export interface GeminiCandidate {
  content?: GeminiContent;
  finishReason?: string;
  /** Omitted for candidate 0 (a protobuf default), so the position in the list stands in for it. */
  index?: number;
  safetyRatings?: unknown[];
}

export interface GeminiResponse {
  candidates?: GeminiCandidate[];
  promptFeedback?: { blockReason?: string; safetyRatings?: unknown[] };
  usageMetadata?: GeminiUsageMetadata;
  modelVersion?: string;
  responseId?: string;
}

/** Google's error body (google.rpc.Status as JSON). */
export interface GeminiErrorBody {
  error?: {
    code?: number;
    message?: string;
    status?: string;
    details?: Array<{ '@type'?: string; reason?: string; retryDelay?: string; [k: string]: unknown }>;
  };
}

export interface GeminiEmbedRequest {
  model?: string;
  content: GeminiContent;
  outputDimensionality?: number;
}

export interface GeminiEmbedResponse {
  embedding?: { values?: number[] };
}

export interface GeminiBatchEmbedResponse {
  embeddings?: Array<{ values?: number[] }>;
}
