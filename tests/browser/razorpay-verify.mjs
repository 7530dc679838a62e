// Checks signatures with the official `razorpay` package's own validation functions, the ones a
// merchant's Node.js server calls: the fake Razorpay of the Rust tests must sign exactly like the
// real one. Reads {orderId, paymentId, checkoutSignature, keySecret, body, webhookSignature,
// webhookSecret} as JSON on stdin; prints {checkout, webhook, forgedCheckout, forgedWebhook}.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const {
  validatePaymentVerification,
  validateWebhookSignature,
} = require("razorpay/dist/utils/razorpay-utils");

let input = "";
for await (const chunk of process.stdin) input += chunk;
const c = JSON.parse(input);
const flip = (hex) => (hex[0] === "0" ? "1" : "0") + hex.slice(1);
console.log(
  JSON.stringify({
    checkout: validatePaymentVerification(
      { order_id: c.orderId, payment_id: c.paymentId },
      c.checkoutSignature,
      c.keySecret,
    ),
    webhook: validateWebhookSignature(c.body, c.webhookSignature, c.webhookSecret),
    forgedCheckout: validatePaymentVerification(
      { order_id: c.orderId, payment_id: c.paymentId },
      flip(c.checkoutSignature),
      c.keySecret,
    ),
    forgedWebhook: validateWebhookSignature(c.body + " ", c.webhookSignature, c.webhookSecret),
  }),
);
