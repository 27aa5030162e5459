/**
 * `GET /api/v1/uploads?action=getPolicy&model=…` (docs/dashscope-contract.md §2.7, §3.5): the temporary-upload policy, under
 * `data` (not `output`), with the ten fields the SDKs read. The policy and signature are shaped like OSS's
 * (base64 policy document, base64 HMAC-SHA1) but sign nothing real: the emulator does not run an OSS host.
 * Deterministic apart from the upload directory's date and uuid, as upstream's.
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { type EmulatorRoute, HttpError } from '../route.js';

export const EMULATOR_UPLOAD_HOST = 'https://dashscope-file-emulator.oss-cn-beijing.aliyuncs.com';
const POLICY_TTL_SEC = 300;
const MAX_FILE_MB = 100;

export const getPolicy: EmulatorRoute = {
  method: 'GET',
  path: '/api/v1/uploads',
  dialect: 'native',
  handle({ query, requestId, apiKey }) {
    const action = query.get('action');
    const model = query.get('model');
    if (action !== 'getPolicy') {
      throw new HttpError(400, 'InvalidParameter', 'Invalid action, only getPolicy is supported.');
    }
    if (!model) {
      throw new HttpError(400, 'InvalidParameter', 'Required parameter "model" missing from request.');
    }
    const now = Date.now();
    const account = createHash('sha256').update(apiKey).digest('hex').slice(0, 32);
    const day = new Date(now).toISOString().slice(0, 10);
    const uploadDir = `dashscope-instant/${account}/${day}/${randomUUID()}`;
    const policy = Buffer.from(
      JSON.stringify({
        expiration: new Date(now + POLICY_TTL_SEC * 1000).toISOString(),
        conditions: [
          ['content-length-range', 0, MAX_FILE_MB * 1024 * 1024],
          ['starts-with', '$key', uploadDir],
          { bucket: 'dashscope-file-emulator' },
        ],
      }),
    ).toString('base64');
    const signature = createHmac('sha1', 'emulator-oss-secret').update(policy).digest('base64');
    return {
      status: 200,
      body: {
        request_id: requestId,
        data: {
          policy,
          signature,
          upload_dir: uploadDir,
          upload_host: EMULATOR_UPLOAD_HOST,
          expire_in_seconds: POLICY_TTL_SEC,
          max_file_size_mb: MAX_FILE_MB,
          capacity_limit_mb: 999_999_999,
          oss_access_key_id: 'LTAI5tEmulatorAccessKeyId',
          x_oss_object_acl: 'private',
          x_oss_forbid_overwrite: 'true',
        },
      },
    };
  },
};
