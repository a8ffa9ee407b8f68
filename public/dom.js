/*
 * Safe DOM building shared by flashgate's pages: every node is made with
 * createElement and every piece of data goes in as a text node or an
 * attribute value, never as markup (no innerHTML, outerHTML or
 * insertAdjacentHTML anywhere), so data can never become HTML.
 *
 *   FG.el('span', {class: 'x', 'data-testid': 'y'}, 'text', node, [more])
 * Attribute names must come from the page's own code; values and children
 * may be data.  null/undefined/false attributes and children are skipped.
 */
'use strict';

window.FG = (function () {
  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === 'object' && child.nodeType ? child : document.createTextNode(String(child)));
  }
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        node.setAttribute(k, v === true ? '' : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function byId(id) { return document.getElementById(id); }
  return { el: el, append: append, clear: clear, byId: byId };
})();
