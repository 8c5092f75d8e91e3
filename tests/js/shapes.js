// What airtable.js 0.12.2 sees of the local server: computed fields, views, attachments,
// special values. Prints one JSON object; tests/test_local_js.py checks it.
const Airtable = require("airtable");

const { url, token, baseId } = JSON.parse(process.env.LOCAL_AIRTABLE);
const base = new Airtable({ apiKey: token, endpointUrl: url }).base(baseId);

(async () => {
  const [task] = await base("Tasks").create([
    { fields: { Title: "a", Points: 3, Due: 1700000000123, Notes: "* x" } },
  ]);
  const [project] = await base("Projects").create([{ fields: { Name: "P", Tasks: [task.id] } }]);
  const got = await base("Projects").find(project.id);
  const hot = await base("Tasks").select({ view: "Hot" }).all();
  const again = await base("Tasks").find(task.id);
  const [withFile] = await base("Tasks").select({ filterByFormula: "{Title} = 'file'" }).all();
  console.log(
    JSON.stringify({
      project: got.fields,
      task: again.fields,
      hot: hot.map((r) => r.get("Title")),
      files: withFile.get("Files"),
      projectId: project.id,
      taskId: task.id,
    }),
  );
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
