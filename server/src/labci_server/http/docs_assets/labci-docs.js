// Starts Swagger UI on /docs. A file of its own, not inline script, so the page's
// Content-Security-Policy can forbid inline script (script-src 'self').
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    // The default sends the description's address to validator.swagger.io.
    validatorUrl: null,
  });
});
