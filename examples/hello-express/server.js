// A minimal Express app to try deploychat with: "deploy ./examples/hello-express locally".
const express = require("express");

const app = express();
const port = Number(process.env.PORT || 8080);

app.get("/", (req, res) => {
  const greeting = process.env.GREETING || "Hello";
  res.type("text/plain").send(`${greeting} from Express!\n`);
});

app.get("/healthz", (req, res) => {
  res.json({ status: "ok" });
});

app.listen(port, () => {
  console.log(`hello-express listening on port ${port}`);
});
