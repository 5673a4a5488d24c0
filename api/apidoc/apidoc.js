/* The API reference page: fetches the OpenAPI document from this server and renders it with DOM
 * calls only (no HTML parsing of strings, no code from strings), so it runs under the page's
 * strict Content-Security-Policy and nothing from the document is ever taken as markup. */
(function () {
  "use strict";

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  /* Appends text to node, with `code` spans and **bold**. */
  function inline(node, text) {
    (text || "").split(/(`[^`]+`|\*\*[^*]+\*\*)/).forEach(function (part) {
      if (/^`[^`]+`$/.test(part)) node.appendChild(el("code", {}, [part.slice(1, -1)]));
      else if (/^\*\*[^*]+\*\*$/.test(part)) node.appendChild(el("strong", {}, [part.slice(2, -2)]));
      else if (part) node.appendChild(document.createTextNode(part));
    });
    return node;
  }

  /* Paragraphs split on blank lines. */
  function prose(text) {
    var box = el("div");
    (text || "").split(/\n\n+/).forEach(function (para) { box.appendChild(inline(el("p"), para)); });
    return box;
  }

  function anchor(method, path) {
    return "op-" + method + "-" + path.replace(/[^A-Za-z0-9]+/g, "-");
  }

  function refName(ref) {
    var m = /^#\/components\/schemas\/([^/]+)/.exec(ref || "");
    return m ? m[1] : null;
  }

  /* A schema as indented JSON, its $ref members linked to the schema section. */
  function schemaView(schema) {
    var pre = el("pre");
    var text = JSON.stringify(schema, null, 2);
    text.split(/("\$ref": "[^"]*")/).forEach(function (part) {
      var m = /^"\$ref": "([^"]*)"$/.exec(part);
      var name = m && refName(m[1]);
      if (name) {
        pre.appendChild(document.createTextNode('"$ref": "'));
        pre.appendChild(el("a", { href: "#schema-" + name }, [m[1]]));
        pre.appendChild(document.createTextNode('"'));
      } else {
        pre.appendChild(document.createTextNode(part));
      }
    });
    return pre;
  }

  function parametersView(params) {
    var rows = params.map(function (p) {
      return el("tr", {}, [
        el("td", {}, [el("code", {}, [p.name])]),
        el("td", {}, [p.in + (p.required ? ", required" : "")]),
        el("td", {}, [el("code", {}, [JSON.stringify(p.schema || {})])]),
        el("td", {}, [prose(p.description)]),
      ]);
    });
    return el("table", {}, [el("tr", {}, [el("th", {}, ["name"]), el("th", {}, ["in"]), el("th", {}, ["schema"]),
                                           el("th", {}, ["description"])])].concat(rows));
  }

  function responsesView(responses) {
    var box = el("div");
    Object.keys(responses).forEach(function (status) {
      var r = responses[status];
      var codes = r["x-error-codes"] || [];
      /* the codes are listed below, not in the one-line summary */
      var text = (r.description || "").split("\n")[0].replace(/ Codes: .*$/, "");
      var head = inline(el("summary", {}, [el("span", { class: "status s" + status.charAt(0) }, [status]), " "]), text);
      var body = [head];
      if (codes.length) body.push(el("p", {}, ["Codes: "].concat(
        codes.map(function (c, i) { return el("span", {}, [i ? ", " : "", el("code", {}, [c])]); }))));
      Object.keys(r.content || {}).forEach(function (media) {
        body.push(el("h4", {}, [media]));
        body.push(schemaView(r.content[media].schema || {}));
      });
      box.appendChild(el("details", {}, body));
    });
    return box;
  }

  function render(doc) {
    var content = document.getElementById("content"), toc = document.getElementById("toc");
    content.textContent = "";
    document.getElementById("title").textContent = doc.info.title;
    document.getElementById("version").textContent = "OpenAPI " + doc.openapi + " - version " + doc.info.version;
    content.appendChild(el("section", { class: "op" }, [prose(doc.info.description)]));
    var byTag = {};
    (doc.tags || []).forEach(function (t) { byTag[t.name] = []; });
    Object.keys(doc.paths).forEach(function (path) {
      Object.keys(doc.paths[path]).forEach(function (method) {
        var op = doc.paths[path][method], tag = (op.tags || ["other"])[0];
        (byTag[tag] = byTag[tag] || []).push({ path: path, method: method, op: op });
      });
    });
    Object.keys(byTag).forEach(function (tag) {
      if (!byTag[tag].length) return;
      toc.appendChild(el("h3", {}, [tag]));
      byTag[tag].forEach(function (o) {
        var id = anchor(o.method, o.path), op = o.op;
        var link = el("a", { href: "#" + id }, [o.method.toUpperCase() + " " + o.path]);
        toc.appendChild(link);
        var parts = [
          el("h2", {}, [el("span", { class: "method " + o.method }, [o.method.toUpperCase()]),
                        el("span", { class: "path" }, [o.path]), el("span", { class: "summary" }, [op.summary || ""])]),
          el("div", { class: "roles" }, ["Roles: " + (op["x-roles"] || []).join(", ")]),
          prose(op.description),
        ];
        if (op.parameters) parts.push(el("h4", {}, ["Parameters"]), parametersView(op.parameters));
        if (op.requestBody) {
          var media = Object.keys(op.requestBody.content)[0];
          parts.push(el("h4", {}, ["Request body (" + media + (op.requestBody.required ? ", required" : ", optional") + ")"]),
                     schemaView(op.requestBody.content[media].schema));
        }
        parts.push(el("h4", {}, ["Responses"]), responsesView(op.responses));
        var section = el("section", { class: "op", id: id }, parts);
        section.dataset.search = (o.method + " " + o.path + " " + op.summary + " " + (op["x-roles"] || []).join(" ") +
                                  " " + JSON.stringify(op.responses)).toLowerCase();
        link.dataset.search = section.dataset.search;
        content.appendChild(section);
      });
    });
    var schemas = el("section", { id: "schemas" }, [el("h2", {}, ["Schemas"])]);
    toc.appendChild(el("h3", {}, ["schemas"]));
    Object.keys((doc.components || {}).schemas || {}).forEach(function (name) {
      toc.appendChild(el("a", { href: "#schema-" + name }, [name]));
      schemas.appendChild(el("section", { class: "op", id: "schema-" + name },
                             [el("h2", {}, [name]), schemaView(doc.components.schemas[name])]));
    });
    content.appendChild(schemas);
    document.getElementById("filter").addEventListener("input", function (ev) {
      var words = ev.target.value.toLowerCase().split(/\s+/).filter(Boolean);
      document.querySelectorAll("[data-search]").forEach(function (node) {
        var hit = words.every(function (w) { return node.dataset.search.indexOf(w) >= 0; });
        node.classList.toggle("hidden", !hit);
      });
    });
    if (location.hash) {
      var target = document.getElementById(location.hash.slice(1));
      if (target) target.scrollIntoView();
    }
  }

  fetch("openapi.json", { headers: { Accept: "application/json" } })
    .then(function (r) {
      if (!r.ok) throw new Error("GET openapi.json answered " + r.status);
      return r.json();
    })
    .then(render)
    .catch(function (e) {
      document.getElementById("status").textContent = "Cannot load the document: " + e.message;
    });
})();
