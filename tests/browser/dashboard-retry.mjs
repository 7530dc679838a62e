// Opens the ops dashboard in headless Chromium with the operator's Basic credentials, checks
// that the page renders the counts of a queue, and clicks Retry on one failed job.
//
//   node dashboard-retry.mjs <base-url> <user> <password> <service> <queue> <job-id>
//
// Prints one JSON line with what it saw; exits non-zero when the page is not as expected.
// The Rust test that runs it checks the effect (the job runs again and succeeds).
import { chromium } from "playwright-core";

const [base, user, password, service, queue, jobId] = process.argv.slice(2);
if (!jobId) {
  console.error("usage: dashboard-retry.mjs <base-url> <user> <password> <service> <queue> <job-id>");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
try {
  const context = await browser.newContext({ httpCredentials: { username: user, password } });
  const page = await context.newPage();
  const res = await page.goto(`${base}/admin/queues`);
  if (!res || res.status() !== 200) throw new Error(`dashboard answered ${res && res.status()}`);

  const row = page.locator(`#service-${service} tr.queue[data-queue="${queue}"]`);
  const counts = {};
  for (const k of ["waiting", "active", "completed", "failed", "delayed", "dead"]) {
    counts[k] = Number((await row.locator(`td.${k}`).innerText()).trim());
  }
  if (!(counts.failed >= 1)) throw new Error(`expected a failed job in ${queue}: ${JSON.stringify(counts)}`);

  const job = page.locator(`#service-${service} tr.job[data-job="${jobId}"]`);
  const error = (await job.locator("td.bad").innerText()).trim();
  await Promise.all([page.waitForURL(/\/admin\/queues\?done=/), job.locator("button.retry").click()]);
  const done = (await page.locator("#done").innerText()).trim();
  console.log(JSON.stringify({ counts, error, done }));
} finally {
  await browser.close();
}
