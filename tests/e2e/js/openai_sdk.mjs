// The official openai npm package, unchanged, against the endpoint:
// `node openai_sdk.mjs <scenario>` prints one JSON line. LLM_BASE_URL (…/v1),
// LLM_API_KEY and LLM_MODEL come from the environment.
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';

const { LLM_BASE_URL: baseURL, LLM_API_KEY: apiKey, LLM_MODEL: model } = process.env;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const weather = { type: 'function', function: { name: 'get_weather', description: 'Current weather for a city.',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false } } };
const person = z.object({
  name: z.string(),
  age: z.number().int(),
  role: z.enum(['admin', 'user']),
  tags: z.array(z.string()),
  nickname: z.string().nullable(),
  address: z.object({ street: z.string(), city: z.string() }),
});

const scenarios = {
  // tools with create, the answer's message sent back as is, then the tool result.
  tools: async () => {
    const messages = [{ role: 'user', content: 'Weather in Paris?' }];
    const first = await client.chat.completions.create({ model, messages, tools: [weather] });
    const message = first.choices[0].message;
    const call = message.tool_calls[0];
    messages.push(message, { role: 'tool', tool_call_id: call.id, content: 'It is 21 degrees.' });
    const final = await client.chat.completions.create({ model, messages, tools: [weather] });
    return { finish: first.choices[0].finish_reason, content: message.content, name: call.function.name,
      arguments: JSON.parse(call.function.arguments), final: final.choices[0].message.content,
      finalFinish: final.choices[0].finish_reason };
  },
  parse: async () => {
    const r = await client.chat.completions.parse({ model, messages: [{ role: 'user', content: 'Invent a user.' }],
      response_format: zodResponseFormat(person, 'person') });
    return { parsed: r.choices[0].message.parsed, finish: r.choices[0].finish_reason };
  },
  // the SDK's own tool loop.
  'run-tools': async () => {
    const asked = [];
    const runner = client.chat.completions.runTools({ model, messages: [{ role: 'user', content: 'Weather in Paris?' }],
      tools: [{ type: 'function', function: { ...weather.function, parse: JSON.parse,
        function: async ({ city }) => { asked.push(city); return `It is 21 degrees in ${city}.`; } } }] });
    return { final: await runner.finalContent(), asked };
  },
};

process.stdout.write(JSON.stringify(await scenarios[process.argv[2]]()) + '\n');
