document.querySelectorAll('table.sortable th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
  const num = th.classList.contains('num'), dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
  rows.sort((a, b) => { const x = a.cells[col].dataset.v ?? a.cells[col].textContent, y = b.cells[col].dataset.v ?? b.cells[col].textContent;
    return (num ? (Number(x) - Number(y)) : x.localeCompare(y)) * dir; });
  rows.forEach(r => body.appendChild(r)); }));
document.querySelectorAll('select[data-submit]').forEach(s => s.addEventListener('change', () => s.form.submit()));
