// The Vercel AI SDK, unchanged, against the endpoint: `node ai_sdk.mjs <provider> <scenario>`
// prints one JSON line with what the SDK made of the answers. LLM_BASE_URL (…/v1),
// LLM_API_KEY and LLM_MODEL come from the environment.
import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateObject, generateText, Output, stepCountIs, streamObject, streamText, tool } from 'ai';
import { z } from 'zod';

globalThis.AI_SDK_LOG_WARNINGS = false;
const { LLM_BASE_URL: baseURL, LLM_API_KEY: apiKey, LLM_MODEL: modelId } = process.env;
const [providerName, scenario] = process.argv.slice(2);

const providers = {
  // The documented way to reach an OpenAI-compatible server; supportsStructuredOutputs
  // makes it send response_format json_schema (without it, only json_object).
  compatible: () => createOpenAICompatible({ name: 'llm-endpoint', baseURL, apiKey,
    supportsStructuredOutputs: true, includeUsage: true }).chatModel(modelId),
  openai: () => createOpenAI({ baseURL, apiKey }).chat(modelId),
  // Anthropic's Messages API (/v1/messages), the key as x-api-key.
  anthropic: () => createAnthropic({ baseURL, apiKey })(modelId),
  // The provider's default model: OpenAI's Responses API (POST /v1/responses).
  responses: () => createOpenAI({ baseURL, apiKey })(modelId),
};
const model = providers[providerName]();

const asked = [];
const tools = {
  weather: tool({
    description: 'Current weather for a city.',
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => { asked.push(['weather', city]); return `It is 21 degrees in ${city}.`; },
  }),
  time: tool({
    description: 'Local time in a city.',
    inputSchema: z.object({ city: z.string(), clock: z.enum(['12h', '24h']) }),
    execute: async ({ city, clock }) => { asked.push(['time', city]); return `It is 12:00 (${clock}) in ${city}.`; },
  }),
};
const person = z.object({
  name: z.string(),
  age: z.number().int(),
  role: z.enum(['admin', 'user']),
  tags: z.array(z.string()),
  nickname: z.string().nullable(),
  address: z.object({ street: z.string(), city: z.string() }),
});

const calls = (steps) => steps.flatMap((s) => s.toolCalls.map((c) => [c.toolName, c.input]));

const scenarios = {
  // generateText with tools and a multi-step loop: call, tool result, final text.
  'generate-tools': async () => {
    const r = await generateText({ model, maxRetries: 0, tools, stopWhen: stepCountIs(3), prompt: 'Weather in Paris?' });
    return { text: r.text, steps: r.steps.length, calls: calls(r.steps), asked,
      finishes: r.steps.map((s) => s.finishReason), usage: r.totalUsage };
  },
  // the same loop streamed: tool-call deltas parsed by the SDK.
  'stream-tools': async () => {
    const r = streamText({ model, maxRetries: 0, tools, stopWhen: stepCountIs(3), prompt: 'Weather in Paris?' });
    let text = '';
    for await (const part of r.textStream) text += part;
    const steps = await r.steps;
    return { text, steps: steps.length, calls: calls(steps), asked, finishes: steps.map((s) => s.finishReason),
      usage: await r.totalUsage };
  },
  // one streamed step with parallel calls (the test scripts Llama's answer).
  'stream-parallel': async () => {
    const r = streamText({ model, maxRetries: 0, tools, stopWhen: stepCountIs(1), prompt: 'Weather in Paris and time in Tokyo?' });
    const steps = await r.steps;
    return { calls: calls(steps), asked, finishes: steps.map((s) => s.finishReason) };
  },
  // a forced tool.
  'tool-choice': async () => {
    const r = await generateText({ model, maxRetries: 0, tools, toolChoice: { type: 'tool', toolName: 'time' },
      stopWhen: stepCountIs(1), prompt: 'What time is it in Tokyo?' });
    return { calls: calls(r.steps), finishes: r.steps.map((s) => s.finishReason) };
  },
  object: async () => {
    const r = await generateObject({ model, maxRetries: 0, schema: person, prompt: 'Invent a user.' });
    return { object: r.object, finish: r.finishReason };
  },
  // AI SDK 7's replacement for generateObject: generateText with an output.
  'output-object': async () => {
    const r = await generateText({ model, maxRetries: 0, output: Output.object({ schema: person }), prompt: 'Invent a user.' });
    return { object: r.output, finish: r.finishReason };
  },
  'stream-object': async () => {
    const r = streamObject({ model, maxRetries: 0, schema: person, prompt: 'Invent a user.' });
    let partials = 0;
    for await (const _ of r.partialObjectStream) partials += 1;
    return { object: await r.object, partials };
  },
};

const result = await scenarios[scenario]();
process.stdout.write(JSON.stringify(result) + '\n');
